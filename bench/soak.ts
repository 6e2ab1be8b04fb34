/**
 * Soak test, run by hand (never in CI): a waitress server in a child process
 * meets normal keep-alive and pipelined traffic, uploads and streams, mixed
 * with slowloris heads, slow bodies, fuzzed requests, smuggling attempts,
 * clients that vanish mid-head/body/response/pipeline, app faults and
 * connection floods. Prints requests served, errors by kind and the child's
 * RSS over time.
 *
 *     deno run -A bench/soak.ts [--minutes 10] [--report 30]
 *     bun bench/soak.ts [--minutes 10] [--report 30]
 *     bun build bench/soak.ts --target=node --outfile=/tmp/soak.mjs && node /tmp/soak.mjs
 *
 * Exit status 1 when any check failed (an "error" below), else 0.
 * @module
 */
import { spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import { createInterface } from "node:readline";
import { createServer } from "../mod.ts";
import { RawClient, sleep } from "../tests/helpers/http_client.ts";
import {
  checkResponses,
  latin1,
  mutate,
  percentile,
  Rng,
  SEED_REQUESTS,
  splitRandomly,
} from "../tests/reliability/helpers.ts";

const CHANNEL_TIMEOUT = 2; // seconds: head clock, idle and slow-body window
const CLEANUP = 0.5;
const CONNECTION_LIMIT = 300;
const KNOWN_ROUTES = new Set(
  [
    "/",
    "/echo",
    "/stream",
    "/big",
    "/throw",
    "/reject",
    "/broken",
    "/midstream",
    "/hang",
    "/smuggled",
  ],
);

function flag(name: string, fallback: number): number {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? Number(process.argv[i + 1]) : fallback;
}

// ---------------------------------------------------------------------------
// Child: the server under test. Prints "PORT n", then "STATS {...}" lines.
// ---------------------------------------------------------------------------

async function serveChild(): Promise<void> {
  const stats = {
    served: 0,
    routes: {} as Record<string, number>,
    streamsStarted: 0,
    streamsFinished: 0,
    streamsCancelled: 0,
    streamsErrored: 0,
    hanging: 0,
    smuggled: 0,
    log: {} as Record<string, number>,
  };
  // Count log lines by level and message shape (addresses and numbers removed).
  const count = (level: string) => (...args: unknown[]) => {
    const text = String(args[0]).replace(/[0-9a-f.:[\]]*:[0-9]+/g, "ADDR").replace(/[0-9]+/g, "N");
    const key = `${level}: ${text.slice(0, 70)}`;
    stats.log[key] = (stats.log[key] ?? 0) + 1;
  };
  const chunk = new Uint8Array(1024).fill(120);
  const stream = (chunks: number, failAt = -1) => {
    stats.streamsStarted++;
    let i = 0;
    let settled = false;
    const settle = (how: "streamsFinished" | "streamsCancelled" | "streamsErrored") => {
      if (!settled) stats[how]++;
      settled = true;
    };
    return new ReadableStream<Uint8Array>({
      async pull(c) {
        await sleep(1);
        if (i === failAt) {
          settle("streamsErrored");
          throw new Error("mid-stream failure");
        }
        if (i++ >= chunks) {
          settle("streamsFinished");
          return c.close();
        }
        c.enqueue(chunk);
      },
      cancel() {
        settle("streamsCancelled");
      },
    }, { highWaterMark: 0 });
  };

  const server = createServer(async (request) => {
    const path = new URL(request.url).pathname;
    stats.served++;
    const route = KNOWN_ROUTES.has(path) ? path : "(fuzzed)";
    stats.routes[route] = (stats.routes[route] ?? 0) + 1;
    if (request.method === "HEAD") return new Response(null);
    switch (path) {
      case "/":
        return new Response("hello");
      case "/echo": {
        const body = await request.arrayBuffer();
        return new Response(String(body.byteLength));
      }
      case "/stream":
        return new Response(stream(32));
      case "/big":
        return new Response(new Uint8Array(256 * 1024));
      case "/throw":
        throw new Error("app threw");
      case "/reject":
        return Promise.reject(new Error("app rejected"));
      case "/broken":
        return new Response(stream(4, 0));
      case "/midstream":
        return new Response(stream(8, 3));
      case "/hang":
        stats.hanging++; // never settles: the client leaves, the promise stays (by design)
        return new Promise<Response>(() => {});
      case "/smuggled":
        stats.smuggled++;
        return new Response("smuggled");
      default: {
        if (request.body) await request.arrayBuffer().catch(() => {});
        return new Response("other");
      }
    }
  }, {
    host: "127.0.0.1",
    port: 0,
    channelTimeout: CHANNEL_TIMEOUT,
    cleanupInterval: CLEANUP,
    connectionLimit: CONNECTION_LIMIT,
    maxRequestBodySize: 1024 * 1024,
    maxRequestHeaderSize: 16384,
    trustedProxy: "127.0.0.1",
    trustedProxyHeaders: ["x-forwarded-for", "x-forwarded-proto"],
    logger: { info: count("info"), warn: count("warn"), error: count("error") },
  });
  await server.ready;
  server.run();
  const report = () => {
    const m = process.memoryUsage();
    console.log("STATS " + JSON.stringify({ ...stats, heapUsed: m.heapUsed, rss: m.rss }));
  };
  console.log(`PORT ${server.addr.port}`);
  const timer = setInterval(report, 1000);
  const lines = createInterface({ input: process.stdin });
  for await (const line of lines) {
    if (line.trim() !== "close") continue;
    const t0 = Date.now();
    await server.close({ timeout: 5000 });
    await server.finished;
    clearInterval(timer);
    report();
    console.log(`CLOSED ${Date.now() - t0}`);
    process.exit(0);
  }
}

// ---------------------------------------------------------------------------
// Parent: the clients.
// ---------------------------------------------------------------------------

type ServerStats = {
  served: number;
  routes: Record<string, number>;
  streamsStarted: number;
  streamsFinished: number;
  streamsCancelled: number;
  streamsErrored: number;
  hanging: number;
  smuggled: number;
  log: Record<string, number>;
  heapUsed: number;
  rss: number;
};

class Failure extends Error {
  constructor(message: string, readonly detail = "") {
    super(message);
  }
}

const ok: Record<string, number> = {};
const errors: Record<string, number> = {};
const latencies: number[] = [];
let stopping = false;
let stopNow!: () => void;
const stopped = new Promise<void>((resolve) => (stopNow = resolve));
/** Sleeps `ms`, or less once the soak is stopping. */
const pause = (ms: number) => Promise.race([sleep(ms), stopped]);

const examples: Record<string, string> = {};

function check(condition: unknown, why: string, detail?: () => string): asserts condition {
  if (!condition) throw new Failure(why, detail?.() ?? "");
}

/** Sends `text`, waits for `n` final responses (or the close), returns what came. */
async function roundTrip(port: number, text: string | Uint8Array, ms = 10000) {
  const c = await RawClient.connect(port);
  try {
    c.send(typeof text === "string" ? latin1(text) : text);
    await c.until(() => false, ms).catch(() => {});
    return { c, check: checkResponses(c.received, true) };
  } finally {
    c.close();
  }
}

const GET = (path: string, extra = "") => `GET ${path} HTTP/1.1\r\nHost: soak\r\n${extra}\r\n`;

async function normal(port: number): Promise<void> {
  const c = await RawClient.connect(port);
  try {
    for (let i = 0; i < 50 && !stopping; i++) {
      const t0 = performance.now();
      c.send(GET("/"));
      await c.until(() => checkResponses(c.received, false).finals.length > i, 5000);
      latencies.push(performance.now() - t0);
      const r = checkResponses(c.received, false);
      check(r.malformed === null, "malformed response");
      check(r.finals[i]?.status === 200, `status ${r.finals[i]?.status ?? "none"}`);
    }
  } finally {
    c.close();
  }
}

async function pipeline(port: number): Promise<void> {
  const c = await RawClient.connect(port);
  try {
    c.send(GET("/").repeat(9) + GET("/", "Connection: close\r\n"));
    await c.closedByServer(10000);
    const r = checkResponses(c.received, true);
    check(r.malformed === null && r.finals.length === 10, `pipelined: ${r.finals.length}/10`);
    check(r.finals.every((f) => f.status === 200), "pipelined: not all 200");
  } finally {
    c.close();
  }
}

async function upload(port: number, rng: Rng): Promise<void> {
  const size = 1 + rng.int(128 * 1024);
  const body = "u".repeat(size);
  const chunked = rng.chance(0.5);
  // Half say Connection: close (then the server closes), half keep the connection.
  const close = rng.chance(0.5);
  const head = `POST /echo HTTP/1.1\r\nHost: soak\r\n${close ? "Connection: close\r\n" : ""}` +
    (chunked ? "Transfer-Encoding: chunked\r\n\r\n" : `Content-Length: ${size}\r\n\r\n`);
  const payload = chunked ? `${size.toString(16)}\r\n${body}\r\n0\r\n\r\n` : body;
  const c = await RawClient.connect(port);
  let r: ReturnType<typeof checkResponses>;
  try {
    c.send(head + payload);
    await c.until(() => checkResponses(c.received, false).finals.length > 0, 10000)
      .catch(() => {});
    r = checkResponses(c.received, c.ended);
  } finally {
    c.close();
  }
  check(
    r.finals[0]?.status === 200,
    `upload${close ? " with Connection: close" : ""}: status ${r.finals[0]?.status ?? "none"}`,
    () => `${chunked ? "chunked" : "length"} ${size} bytes`,
  );
  check(new TextDecoder().decode(r.finals[0].body) === String(size), "upload size mismatch");
}

async function download(port: number, rng: Rng): Promise<void> {
  const big = rng.chance(0.5);
  const { check: r } = await roundTrip(
    port,
    GET(big ? "/big" : "/stream", "Connection: close\r\n"),
  );
  check(r.finals[0]?.status === 200, `download status ${r.finals[0]?.status ?? "none"}`);
  check(r.finals[0].body.byteLength === (big ? 256 : 32) * 1024, "download size mismatch");
}

async function slowloris(port: number): Promise<void> {
  const c = await RawClient.connect(port);
  try {
    const head = latin1(GET("/", "X-Slow: " + "s".repeat(60) + "\r\n"));
    const t0 = Date.now();
    for (let i = 0; i < head.length && !c.ended; i++) {
      c.send(head.subarray(i, i + 1));
      await c.until(() => false, 500).catch(() => {});
    }
    check(c.ended, "slowloris: head completed before the server closed");
    const held = Date.now() - t0;
    check(held >= CHANNEL_TIMEOUT * 1000 - 100, `slowloris: closed early (${held} ms)`);
    check(held <= (CHANNEL_TIMEOUT + CLEANUP) * 1000 + 3000, `slowloris: held ${held} ms`);
    check(c.received.length === 0, "slowloris: got a response");
  } finally {
    c.close();
  }
}

async function slowBody(port: number): Promise<void> {
  const c = await RawClient.connect(port);
  try {
    c.send("POST /echo HTTP/1.1\r\nHost: soak\r\nContent-Length: 100000\r\n\r\n");
    const t0 = Date.now();
    while (!c.ended && Date.now() - t0 < 20000) {
      c.send("b".repeat(20)); // 100 B/s, far below the 1024 B/s floor
      await c.until(() => false, 200).catch(() => {});
    }
    const held = Date.now() - t0;
    check(c.ended, "slow body: never closed");
    check(held <= (CHANNEL_TIMEOUT + CLEANUP) * 1000 + 3000, `slow body: held ${held} ms`);
  } finally {
    c.close();
  }
}

async function fuzz(port: number, rng: Rng): Promise<void> {
  const request = mutate(rng, rng.pick(SEED_REQUESTS));
  const c = await RawClient.connect(port);
  try {
    for (const part of splitRandomly(rng, latin1(request))) {
      if (c.ended) break;
      c.send(part);
      if (rng.chance(0.3)) await sleep(rng.int(5));
    }
    if (!c.ended) c.shutdown();
    await c.until(() => false, 8000).catch(() => {});
    check(c.ended, "fuzz: never closed");
    // The server's own error page answering a HEAD has a Content-Length and
    // no body; a request line too broken to read as HEAD gets the body.
    let r = checkResponses(c.received, true);
    if (r.leftover !== 0 && request.startsWith("HEAD ")) {
      r = checkResponses(c.received, true, [true]);
    }
    const detail = () =>
      `sent ${JSON.stringify(request.slice(0, 200))} got ${JSON.stringify(c.text.slice(0, 300))}`;
    check(r.malformed === null, "fuzz: malformed response", () => `${r.malformed} ${detail()}`);
    check(r.leftover === 0, "fuzz: partial response", detail);
  } finally {
    c.close();
  }
}

const SMUGGLE = "GET /smuggled HTTP/1.1\r\nHost: soak\r\n\r\n";
const ATTACKS = [
  `POST / HTTP/1.1\r\nHost: s\r\nContent-Length: ${
    5 + SMUGGLE.length
  }\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n${SMUGGLE}`,
  `POST / HTTP/1.1\r\nHost: s\r\nTransfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n${
    SMUGGLE.length.toString(16)
  }\r\n${SMUGGLE}\r\n0\r\n\r\n`,
  `POST / HTTP/1.1\r\nHost: s\r\nTransfer-Encoding: xchunked\r\n\r\n0\r\n\r\n${SMUGGLE}`,
  `GET / HTTP/1.1\r\nHost: s\r\nContent-Length: ${SMUGGLE.length}\r\n\r\n${SMUGGLE}`,
  `POST / HTTP/1.1\r\nHost: s\r\nContent-Length: 0\r\nContent-Length: ${SMUGGLE.length}\r\n\r\n${SMUGGLE}`,
  `POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n${SMUGGLE}`,
  `POST / HTTP/1.1\r\nHost: s\r\nTransfer-Encoding: chunked\r\n\r\n2;x\nzz\r\n0\r\n\r\n${SMUGGLE}`,
  `POST / HTTP/1.1\r\nHost: s\r\nExpect: 100-continue\r\nContent-Length: ${SMUGGLE.length}\r\n\r\n${SMUGGLE}`,
  `GET / HTTP/1.1\r\nHost: s\r\nContent-Length: -1\r\n\r\n${SMUGGLE}`,
];

async function smuggle(port: number, rng: Rng): Promise<void> {
  const c = await RawClient.connect(port);
  try {
    c.send(rng.pick(ATTACKS));
    await c.until(() => false, 300).catch(() => {});
    if (!c.ended) c.shutdown();
    await c.closedByServer(5000);
    const r = checkResponses(c.received, true);
    check(r.malformed === null && r.leftover === 0, "smuggle: malformed response");
    check(r.finals.length === 1, `smuggle: ${r.finals.length} responses`);
  } finally {
    c.close();
  }
}

async function disconnect(port: number, rng: Rng): Promise<void> {
  const c = await RawClient.connect(port);
  const rude = rng.chance(0.5); // RST, else FIN
  try {
    switch (rng.int(4)) {
      case 0: // mid-head
        c.send("GET / HTTP/1.1\r\nHost: so");
        break;
      case 1: // mid-body upload
        c.send(
          "POST /echo HTTP/1.1\r\nHost: soak\r\nContent-Length: 50000\r\n\r\n" + "x".repeat(1000),
        );
        break;
      case 2: // mid-response
        c.send(GET("/stream"));
        await c.until(() => c.received.length > 2000, 5000);
        break;
      case 3: // mid-pipeline
        c.send(GET("/stream") + GET("/") + GET("/big"));
        await c.until(() => c.received.length > 0, 5000);
        break;
    }
    await sleep(rng.int(5));
  } finally {
    if (rude) c.socket.resetAndDestroy();
    else c.close();
  }
}

async function fault(port: number, rng: Rng): Promise<void> {
  const path = rng.pick(["/throw", "/reject", "/broken", "/midstream"]);
  const { c, check: r } = await roundTrip(port, GET(path), 5000);
  check(c.ended, `${path}: connection left open`);
  if (path === "/midstream") {
    check(r.finals.length === 0 && r.leftover > 0, `${path}: expected a cut-off chunked response`);
  } else {
    check(r.finals[0]?.status === 500, `${path}: status ${r.finals[0]?.status ?? "none"}`);
  }
}

async function hang(port: number): Promise<void> {
  const c = await RawClient.connect(port);
  c.send(GET("/hang"));
  await sleep(50);
  c.socket.resetAndDestroy();
  await pause(5000); // one abandoned handler every few seconds is plenty
}

async function flood(port: number): Promise<void> {
  await pause(20000);
  if (stopping) return;
  const n = 2 * CONNECTION_LIMIT;
  const results = await Promise.all(
    Array.from({ length: n }, () =>
      roundTrip(port, GET("/", "Connection: close\r\n"), 30000).then(
        (x) => x.check.finals[0]?.status === 200,
        () => false,
      )),
  );
  const served = results.filter(Boolean).length;
  check(served === n, `flood: ${n - served} of ${n} not served`);
  await pause(40000);
}

function rssOf(pid: number): number {
  try {
    const m = /VmRSS:\s+([0-9]+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
    return m ? Number(m[1]) * 1024 : NaN;
  } catch {
    return NaN;
  }
}

const mb = (n: number) => (n / 1048576).toFixed(1);

async function main(): Promise<void> {
  const minutes = flag("minutes", 10);
  const reportEvery = flag("report", 30);
  const isDeno = typeof (globalThis as { Deno?: unknown }).Deno !== "undefined";
  const self = new URL(import.meta.url).pathname;
  const child = spawn(
    process.execPath,
    isDeno ? ["run", "-A", self, "--serve"] : [self, "--serve"],
    {
      stdio: ["pipe", "pipe", "inherit"],
    },
  );
  let latest = null as ServerStats | null;
  let port = 0;
  let closedIn = -1;
  const portReady = new Promise<void>((resolve) => {
    createInterface({ input: child.stdout! }).on("line", (line: string) => {
      if (line.startsWith("PORT ")) {
        port = Number(line.slice(5));
        resolve();
      } else if (line.startsWith("STATS ")) latest = JSON.parse(line.slice(6));
      else if (line.startsWith("CLOSED ")) closedIn = Number(line.slice(7));
    });
  });
  const exited = new Promise<number | null>((resolve) => child.on("exit", (code) => resolve(code)));
  await portReady;
  const runtime = isDeno ? "deno" : "Bun" in globalThis ? "bun" : "node";
  console.log(
    `soak: ${runtime}, ${minutes} min, server pid ${child.pid} on 127.0.0.1:${port}, ` +
      `channelTimeout ${CHANNEL_TIMEOUT}s, connectionLimit ${CONNECTION_LIMIT}`,
  );

  const kinds: Array<[string, number, (rng: Rng) => Promise<void>]> = [
    ["normal", 4, () => normal(port)],
    ["pipeline", 1, () => pipeline(port)],
    ["upload", 2, (rng) => upload(port, rng)],
    ["download", 2, (rng) => download(port, rng)],
    ["slowloris", 20, () => slowloris(port)],
    ["slowbody", 5, () => slowBody(port)],
    ["fuzz", 2, (rng) => fuzz(port, rng).finally(() => sleep(10))],
    ["smuggle", 1, (rng) => smuggle(port, rng).finally(() => sleep(20))],
    ["disconnect", 2, (rng) => disconnect(port, rng).finally(() => sleep(10))],
    ["fault", 1, (rng) => fault(port, rng).finally(() => sleep(20))],
    ["hang", 1, () => hang(port)],
    ["flood", 1, () => flood(port)],
  ];
  let seed = 1;
  const loops = kinds.flatMap(([kind, copies, job]) =>
    Array.from({ length: copies }, async () => {
      const rng = new Rng(seed++);
      while (!stopping) {
        try {
          await job(rng);
          ok[kind] = (ok[kind] ?? 0) + 1;
        } catch (error) {
          const why = error instanceof Failure
            ? error.message
            : `${kind}: ${String(error).slice(0, 80)}`;
          errors[why] = (errors[why] ?? 0) + 1;
          if (error instanceof Failure && error.detail) examples[why] ??= error.detail;
        }
      }
    })
  );

  const t0 = Date.now();
  const series: Array<{ t: number; rss: number; heap: number; served: number }> = [];
  console.log("\n   time  served  req/s  p99 ms  rss MB  heap MB  client ok  errors");
  let lastServed = 0;
  let lastT = t0;
  while (Date.now() - t0 < minutes * 60000) {
    await sleep(Math.min(reportEvery * 1000, minutes * 60000 - (Date.now() - t0)));
    const now = Date.now();
    const served = latest?.served ?? 0;
    const rss = rssOf(child.pid!);
    series.push({ t: now - t0, rss, heap: latest?.heapUsed ?? NaN, served });
    const p99 = percentile(latencies.splice(0), 99);
    const totalOk = Object.values(ok).reduce((a, b) => a + b, 0);
    const totalErr = Object.values(errors).reduce((a, b) => a + b, 0);
    console.log(
      `${((now - t0) / 1000).toFixed(0).padStart(6)}s ${String(served).padStart(7)} ${
        ((served - lastServed) / ((now - lastT) / 1000)).toFixed(0).padStart(6)
      } ${p99.toFixed(1).padStart(7)} ${mb(rss).padStart(7)} ${
        mb(latest?.heapUsed ?? NaN).padStart(8)
      } ${String(totalOk).padStart(10)} ${String(totalErr).padStart(7)}`,
    );
    lastServed = served;
    lastT = now;
  }
  stopping = true;
  stopNow();
  await Promise.race([Promise.all(loops), sleep(60000)]);
  child.stdin!.write("close\n");
  const code = await Promise.race([exited, sleep(20000).then(() => "timeout" as const)]);
  if (code === "timeout") {
    errors["server: close() did not finish within 20 s"] = 1;
    child.kill("SIGKILL");
  }
  const s = latest as ServerStats | null;
  console.log(`\nserver closed gracefully in ${closedIn} ms (exit ${String(code)})`);
  console.log(`requests served by the app: ${s?.served ?? "?"}`);
  console.log(`app calls by route: ${JSON.stringify(s?.routes ?? {})}`);
  console.log(`client outcomes ok: ${JSON.stringify(ok)}`);
  if (s) {
    const open = s.streamsStarted - s.streamsFinished - s.streamsCancelled - s.streamsErrored;
    console.log(
      `response streams: ${s.streamsStarted} started, ${s.streamsFinished} finished, ` +
        `${s.streamsCancelled} cancelled, ${s.streamsErrored} errored by design, ${open} left open`,
    );
    if (open !== 0) errors["response streams neither finished nor cancelled"] = open;
    console.log(
      `smuggled requests served: ${s.smuggled}; handlers left hanging by design: ${s.hanging}`,
    );
    console.log("server log lines by kind:");
    for (const [k, v] of Object.entries(s.log).sort((a, b) => b[1] - a[1])) {
      console.log(`  ${String(v).padStart(8)}  ${k}`);
    }
    if (s.smuggled > 0) errors["smuggled request served"] = s.smuggled;
  }
  console.log("errors by kind:" + (Object.keys(errors).length ? "" : " none"));
  for (const [k, v] of Object.entries(errors).sort((a, b) => b[1] - a[1])) {
    console.log(`  ${String(v).padStart(8)}  ${k}`);
    if (examples[k]) console.log(`            e.g. ${examples[k]}`);
  }
  const rsses = series.map((x) => x.rss).filter(Number.isFinite);
  if (rsses.length) {
    const half = rsses.slice(Math.floor(rsses.length / 2));
    console.log(
      `server RSS MB: first ${mb(rsses[0])}, max ${mb(Math.max(...rsses))}, last ${
        mb(rsses.at(-1)!)
      }, second-half range ${mb(Math.min(...half))}-${mb(Math.max(...half))}`,
    );
  }
  process.exit(Object.keys(errors).length ? 1 : 0);
}

if (process.argv.includes("--serve")) await serveChild();
else await main();
