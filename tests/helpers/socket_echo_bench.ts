// Hand-run micro benchmark (not a test): request/response ping-pong through
// the runtime adapter vs the raw runtime API, same client for both.
//   npx deno run -A tests/helpers/socket_echo_bench.ts
//   npx bun tests/helpers/socket_echo_bench.ts
import process from "node:process";
import { detectRuntime } from "../../src/runtime/mod.ts";
import type { Runtime } from "../../src/runtime/mod.ts";

// deno-lint-ignore no-explicit-any
const g = globalThis as any;
const CLIENTS = 16;
const ROUNDS = 4000;
const REQ = new TextEncoder().encode("GET / HTTP/1.1\r\nHost: x\r\n\r\n");
const RES = new TextEncoder().encode(
  "HTTP/1.1 200 OK\r\nContent-Length: 13\r\nContent-Type: text/plain\r\n\r\nHello, World!",
);

/** Adapter server: answers each chunk with RES. */
async function adapterServer(rt: Runtime): Promise<{ port: number; close(): Promise<void> }> {
  const l = await rt.listen({ transport: "tcp", hostname: "127.0.0.1", port: 0 });
  l.start((s) =>
    s.start({
      onData: () => s.write(RES),
      onEnd: () => s.end(),
      onDrain: () => {},
      onSent: () => {},
      onClose: () => {},
    })
  );
  return { port: l.addr.port!, close: () => l.close() };
}

/** Raw server on the runtime's own API, written the obvious fast way. */
function rawServer(): { port: number; close(): Promise<void> } {
  if (g.Deno) {
    const l = g.Deno.listen({ hostname: "127.0.0.1", port: 0 });
    (async () => {
      try {
        for await (const conn of l) {
          conn.setNoDelay(true);
          (async () => {
            const buf = new Uint8Array(65536);
            try {
              while ((await conn.read(buf)) !== null) await conn.write(RES);
            } catch { /* closed */ }
            try {
              conn.close();
            } catch { /* closed */ }
          })();
        }
      } catch { /* listener closed */ }
    })();
    return { port: l.addr.port, close: () => Promise.resolve(l.close()) };
  }
  const l = g.Bun.listen({
    hostname: "127.0.0.1",
    port: 0,
    socket: {
      open(s: { setNoDelay(b: boolean): void }) {
        s.setNoDelay(true);
      },
      data(s: { write(b: Uint8Array): number }) {
        s.write(RES);
      },
    },
  });
  return { port: l.port, close: () => Promise.resolve(l.stop(true)) };
}

/**
 * CLIENTS connections, each doing ROUNDS request/response round trips.
 * Returns [requests per wall second, CPU microseconds per request] (client
 * and server share the process, so CPU per request is the steadier figure).
 */
async function drive(port: number): Promise<[number, number]> {
  const t0 = performance.now();
  const c0 = process.cpuUsage();
  const jobs: Promise<void>[] = [];
  for (let i = 0; i < CLIENTS; i++) jobs.push(g.Deno ? denoClient(port) : bunClient(port));
  await Promise.all(jobs);
  const cpu = process.cpuUsage(c0);
  const n = CLIENTS * ROUNDS;
  return [n / ((performance.now() - t0) / 1000), (cpu.user + cpu.system) / n];
}

async function denoClient(port: number): Promise<void> {
  const conn = await g.Deno.connect({ hostname: "127.0.0.1", port });
  conn.setNoDelay(true);
  const buf = new Uint8Array(65536);
  for (let i = 0; i < ROUNDS; i++) {
    await conn.write(REQ);
    let got = 0;
    while (got < RES.byteLength) got += (await conn.read(buf)) ?? Infinity;
  }
  conn.close();
}

function bunClient(port: number): Promise<void> {
  return new Promise((resolve) => {
    let rounds = 0;
    let got = 0;
    g.Bun.connect({
      hostname: "127.0.0.1",
      port,
      socket: {
        open(s: { write(b: Uint8Array): number; setNoDelay(b: boolean): void }) {
          s.setNoDelay(true);
          s.write(REQ);
        },
        data(s: { write(b: Uint8Array): number; end(): void }, d: Uint8Array) {
          got += d.byteLength;
          if (got < RES.byteLength) return;
          got = 0;
          if (++rounds === ROUNDS) {
            s.end();
            resolve();
          } else s.write(REQ);
        },
      },
    });
  });
}

const rt = await detectRuntime();
const REPS = Number(process.env.REPS ?? 5);
const results: Record<string, [number, number][]> = { raw: [], adapter: [] };
for (let rep = 0; rep < REPS; rep++) {
  for (const kind of ["raw", "adapter"] as const) {
    const server = kind === "raw" ? rawServer() : await adapterServer(rt);
    results[kind].push(await drive(server.port));
    await server.close();
  }
}
const median = (xs: number[]): number => xs.slice().sort((a, b) => a - b)[xs.length >> 1];
console.log(`${rt.name}: ${CLIENTS} clients x ${ROUNDS} round trips, median of ${REPS}`);
for (const kind of ["raw", "adapter"]) {
  const rate = median(results[kind].map((r) => r[0]));
  const cpu = median(results[kind].map((r) => r[1]));
  console.log(`${kind.padEnd(8)} ${Math.round(rate)} req/s   ${cpu.toFixed(2)} us CPU/req`);
}
