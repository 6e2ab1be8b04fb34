/**
 * Helpers for the reliability tests: a seeded PRNG, a strict HTTP response
 * checker (every received byte must belong to a well-formed response), a
 * forced GC for heap checks, percentiles and a small concurrency pool.
 * Builds on `tests/helpers/http_client.ts` (RawClient, withServer).
 * @module
 */
import { readFileSync } from "node:fs";
import * as v8 from "node:v8";
import * as vm from "node:vm";
import { fromLatin1, sleep } from "../helpers/http_client.ts";

/** A small seeded PRNG (mulberry32): same seed, same sequence on every runtime. */
export class Rng {
  #state: number;
  /** The seed this generator started from (print it when a test fails). */
  readonly seed: number;

  constructor(seed: number) {
    this.seed = seed >>> 0;
    this.#state = this.seed;
  }

  /** A float in [0, 1). */
  next(): number {
    let t = (this.#state = (this.#state + 0x6d2b79f5) >>> 0);
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }

  /** An integer in [0, n). */
  int(n: number): number {
    return Math.floor(this.next() * n);
  }

  /** An integer in [lo, hi]. */
  between(lo: number, hi: number): number {
    return lo + this.int(hi - lo + 1);
  }

  /** True with probability `p`. */
  chance(p: number): boolean {
    return this.next() < p;
  }

  /** One element of `items`. */
  pick<T>(items: readonly T[]): T {
    return items[this.int(items.length)];
  }
}

/**
 * The fuzz seed: `FUZZ_SEED=<n>` replays a run, `FUZZ_SEED=random` picks a
 * fresh one; otherwise a fixed default so CI is reproducible.
 */
export function fuzzSeed(fallback: number): number {
  const env = (globalThis as { process?: { env?: Record<string, string | undefined> } }).process
    ?.env?.FUZZ_SEED;
  if (env === "random") return (Math.random() * 2 ** 32) >>> 0;
  if (env && /^[0-9]+$/.test(env)) return Number(env) >>> 0;
  return fallback;
}

type GcFn = () => void;
let gcFn: GcFn | null | undefined;

/** A full garbage collection if the runtime lets us force one (Bun.gc, V8's gc). */
export function forceGc(): boolean {
  if (gcFn === undefined) {
    gcFn = null;
    const bun = (globalThis as { Bun?: { gc(full: boolean): void } }).Bun;
    const g = (globalThis as { gc?: GcFn }).gc;
    if (bun) gcFn = () => bun.gc(true);
    else if (typeof g === "function") gcFn = g;
    else {
      try {
        // V8 (Deno, Node): expose gc at run time and fetch it from a fresh context.
        v8.setFlagsFromString("--expose-gc");
        const fn = vm.runInNewContext("gc") as GcFn;
        if (typeof fn === "function") gcFn = fn;
      } catch {
        gcFn = null;
      }
    }
  }
  if (!gcFn) return false;
  gcFn();
  return true;
}

/** heapUsed after letting pending callbacks run and forcing GC (when possible). */
export async function settledHeap(): Promise<number> {
  for (let i = 0; i < 3; i++) {
    await sleep(20);
    forceGc();
  }
  return process.memoryUsage().heapUsed;
}

/** One response as seen on the wire. */
export interface WireResponse {
  status: number;
  version: string;
  headers: Array<[string, string]>;
  /** Header value (lists joined with ", "), or undefined. */
  header(name: string): string | undefined;
  body: Uint8Array;
  framing: "length" | "chunked" | "close" | "none";
}

/** What `checkResponses` found. */
export interface WireCheck {
  /** Complete responses, 1xx included, in order. */
  responses: WireResponse[];
  /** Final (non-1xx) responses. */
  finals: WireResponse[];
  /** Bytes after the last complete response (0 when everything parsed). */
  leftover: number;
  /** Description of the first malformed byte sequence, or null. */
  malformed: string | null;
}

const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
const HEX = /^[0-9A-Fa-f]+$/;

/**
 * Parses `data` as a sequence of HTTP/1.x responses, strictly: CRLF line
 * ends, token header names, no control bytes in values, exact framing. With
 * `closed`, a response without length runs to the end (close-delimited).
 * `headRequests` lists, in order, which responses answer HEAD (bodiless).
 */
export function checkResponses(
  data: Uint8Array,
  closed: boolean,
  headRequests: boolean[] = [],
): WireCheck {
  const text = fromLatin1(data);
  const responses: WireResponse[] = [];
  const finals: WireResponse[] = [];
  let pos = 0;
  const fail = (why: string): WireCheck => ({
    responses,
    finals,
    leftover: text.length - pos,
    malformed: `${why} at byte ${pos}: ${JSON.stringify(text.slice(pos, pos + 120))}`,
  });
  while (pos < text.length) {
    const end = text.indexOf("\r\n\r\n", pos);
    if (end < 0) break;
    const lines = text.slice(pos, end).split("\r\n");
    const m = /^HTTP\/(1\.[01]) ([1-5][0-9][0-9])(?: [\x20-\x7e]*)?$/.exec(lines[0]);
    if (!m) return fail("bad status line");
    const headers: Array<[string, string]> = [];
    for (const line of lines.slice(1)) {
      const i = line.indexOf(":");
      if (i <= 0 || !TOKEN.test(line.slice(0, i))) {
        return fail(`bad header line ${JSON.stringify(line)}`);
      }
      const value = line.slice(i + 1);
      // deno-lint-ignore no-control-regex
      if (/[\x00-\x08\x0a-\x1f\x7f]/.test(value)) {
        return fail(`control byte in ${JSON.stringify(line)}`);
      }
      headers.push([line.slice(0, i), value.trim()]);
    }
    const header = (name: string): string | undefined => {
      const found = headers.filter(([k]) => k.toLowerCase() === name);
      return found.length ? found.map(([, v]) => v).join(", ") : undefined;
    };
    const status = Number(m[2]);
    const isFinal = status >= 200;
    const head = isFinal && (headRequests[finals.length] ?? false);
    let p = end + 4;
    let framing: WireResponse["framing"];
    let body = "";
    const te = header("transfer-encoding");
    const cl = header("content-length");
    if (te !== undefined && cl !== undefined) {
      return fail("both Content-Length and Transfer-Encoding");
    }
    if (!isFinal || head || status === 204 || status === 304) {
      framing = "none";
    } else if (te !== undefined) {
      if (te.toLowerCase() !== "chunked") return fail(`unexpected Transfer-Encoding ${te}`);
      framing = "chunked";
      let complete = false;
      for (;;) {
        const le = text.indexOf("\r\n", p);
        if (le < 0) break;
        const sizeText = text.slice(p, le);
        if (!HEX.test(sizeText)) return fail(`bad chunk size ${JSON.stringify(sizeText)}`);
        const size = parseInt(sizeText, 16);
        if (size === 0) {
          if (text.length < le + 4) break;
          if (text.slice(le + 2, le + 4) !== "\r\n") return fail("trailers in a response");
          p = le + 4;
          complete = true;
          break;
        }
        if (le + 2 + size + 2 > text.length) break;
        if (text.slice(le + 2 + size, le + 4 + size) !== "\r\n") return fail("chunk without CRLF");
        body += text.slice(le + 2, le + 2 + size);
        p = le + 4 + size;
      }
      if (!complete) break;
    } else if (cl !== undefined) {
      if (!/^[0-9]+$/.test(cl)) return fail(`bad Content-Length ${cl}`);
      framing = "length";
      const len = Number(cl);
      if (p + len > text.length) break;
      body = text.slice(p, p + len);
      p += len;
    } else {
      framing = "close";
      if (!closed) break;
      body = text.slice(p);
      p = text.length;
    }
    const response: WireResponse = {
      status,
      version: m[1],
      headers,
      header,
      body: Uint8Array.from(body, (c) => c.charCodeAt(0)),
      framing,
    };
    responses.push(response);
    if (isFinal) finals.push(response);
    pos = p;
  }
  return { responses, finals, leftover: text.length - pos, malformed: null };
}

/**
 * Milliseconds the calling thread (the event loop's) has spent runnable but
 * waiting for a CPU that other threads held (other processes', or this
 * one's own: its collector, its pools): Linux's schedstat, 0 where it cannot
 * be read. The difference over an interval is time the event loop could not
 * run, not time it spent.
 */
export function cpuWaitMs(): number {
  try {
    return Number(readFileSync("/proc/thread-self/schedstat", "utf8").split(" ")[1]) / 1e6 || 0;
  } catch {
    return 0;
  }
}

/** The p-th percentile (0..100) of `values` (nearest rank). */
export function percentile(values: number[], p: number): number {
  if (values.length === 0) return NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const rank = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[rank];
}

/** Runs `job(0..count-1)` with at most `concurrency` at a time; rejects on the first failure. */
export async function pool(
  count: number,
  concurrency: number,
  job: (index: number) => Promise<void>,
): Promise<void> {
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < count) {
      const i = next++;
      await job(i);
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, count) }, worker));
}

/** Polls `cond` every 10 ms; throws with `what` after `ms`. */
export async function waitFor(cond: () => boolean, ms: number, what: string): Promise<void> {
  const deadline = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await sleep(10);
  }
}

/** Latin-1 text to bytes (re-exported for brevity in tests). */
export { latin1 } from "../helpers/http_client.ts";

/** Valid requests the fuzzer starts from (latin-1 text). */
export const SEED_REQUESTS: readonly string[] = [
  "GET /a?x=1 HTTP/1.1\r\nHost: example\r\nUser-Agent: fuzz\r\nAccept: */*\r\n\r\n",
  "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r\nContent-Length: 11\r\n\r\nhello world",
  "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\nX-Trailer: t\r\n\r\n",
  "GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
  "PUT /echo HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\nbody",
  "GET /p1 HTTP/1.1\r\nHost: x\r\n\r\nPOST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabcGET /p3 HTTP/1.1\r\nHost: x\r\n\r\n",
  "HEAD / HTTP/1.1\r\nHost: x\r\n\r\n",
  "OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n",
  "GET http://example.com/abs HTTP/1.1\r\nHost: other\r\nConnection: close\r\n\r\n",
  "GET /fwd HTTP/1.1\r\nHost: x\r\nX-Forwarded-For: 1.2.3.4, 5.6.7.8\r\nX-Forwarded-Proto: https\r\nForwarded: for=1.2.3.4;proto=https;host=h\r\n\r\n",
  "DELETE /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nConnection: close\r\n\r\n12345",
];

const SPECIAL = [
  "\r",
  "\n",
  "\r\n",
  "\x00",
  " ",
  "\t",
  "\x0b",
  ":",
  ";",
  ",",
  '"',
  "\x7f",
  "\xff",
  "\x80",
  "\r\n\r\n",
];
const NUMBERS = [
  "99999999999999999999",
  "-1",
  "0",
  "+5",
  "0x10",
  "1e3",
  "18446744073709551616",
  "",
  "9007199254740993",
  "4294967296",
  "1.5",
  " 7",
];
const EXTRA_HEADERS = [
  "Transfer-Encoding: chunked",
  "Content-Length: 5",
  "Content-Length: 0",
  "Connection: close",
  "Connection: keep-alive",
  "Expect: 100-continue",
  "Host: y",
  "Upgrade: websocket",
  "X-Forwarded-For: ::zz, 1.2.3.4",
  'Forwarded: for="[::1"',
  "Transfer-Encoding: gzip",
  "X: " + "v".repeat(300),
];

/** Applies 1-4 random mutations to `request` (latin-1 text). */
export function mutate(rng: Rng, request: string): string {
  let s = request;
  const rounds = 1 + rng.int(4);
  for (let r = 0; r < rounds; r++) {
    const at = rng.int(s.length + 1);
    const kind = rng.int(13);
    switch (kind) {
      case 0: // replace a byte with any byte
        s = s.slice(0, at) + String.fromCharCode(rng.int(256)) + s.slice(at + 1);
        break;
      case 1: // flip one bit
        if (at < s.length) {
          s = s.slice(0, at) + String.fromCharCode(s.charCodeAt(at) ^ (1 << rng.int(8))) +
            s.slice(at + 1);
        }
        break;
      case 2: // CR/LF/NUL/space games
        s = s.slice(0, at) + rng.pick(SPECIAL) + s.slice(at);
        break;
      case 3: // delete a short range
        s = s.slice(0, at) + s.slice(at + 1 + rng.int(4));
        break;
      case 4: // duplicate a header line
      case 5: { // or swap two of them
        const end = s.indexOf("\r\n\r\n");
        if (end < 0) break;
        const lines = s.slice(0, end).split("\r\n");
        if (lines.length < 2) break;
        const i = 1 + rng.int(lines.length - 1);
        const j = 1 + rng.int(lines.length - 1);
        if (kind === 4) lines.splice(j, 0, lines[i]);
        else [lines[i], lines[j]] = [lines[j], lines[i]];
        s = lines.join("\r\n") + s.slice(end);
        break;
      }
      case 6: { // huge, negative and odd numbers
        const digits = /[0-9]+/g;
        const found = [...s.matchAll(digits)];
        if (found.length === 0) break;
        const m = rng.pick(found);
        s = s.slice(0, m.index!) + rng.pick(NUMBERS) + s.slice(m.index! + m[0].length);
        break;
      }
      case 7: // truncate
        s = s.slice(0, at);
        break;
      case 8: { // repeat a slice
        const len = 1 + rng.int(40);
        s = s.slice(0, at) + s.slice(at, at + len) + s.slice(at);
        break;
      }
      case 9: // a long run
        s = s.slice(0, at) + "a".repeat(rng.pick([100, 5000, 20000])) + s.slice(at);
        break;
      case 10: { // flip letter case
        const c = s.charCodeAt(at);
        if ((c >= 65 && c <= 90) || (c >= 97 && c <= 122)) {
          s = s.slice(0, at) + String.fromCharCode(c ^ 32) + s.slice(at + 1);
        }
        break;
      }
      case 11: // another version
        s = s.replace(
          /HTTP\/1\.[01]/,
          rng.pick(["HTTP/2.0", "HTTP/0.9", "HTTP/1.2", "HTTP/1", "http/1.1", "HTTP/1.10"]),
        );
        break;
      case 12: { // add a framing or proxy header
        const end = s.indexOf("\r\n");
        if (end < 0) break;
        s = s.slice(0, end + 2) + rng.pick(EXTRA_HEADERS) + "\r\n" + s.slice(end + 2);
        break;
      }
    }
  }
  return s;
}

/** Splits `bytes` into 1-4 parts at random points. */
export function splitRandomly(rng: Rng, bytes: Uint8Array): Uint8Array[] {
  const cuts = new Set<number>();
  const n = rng.int(4);
  for (let i = 0; i < n && bytes.length > 1; i++) cuts.add(1 + rng.int(bytes.length - 1));
  const points = [0, ...[...cuts].sort((a, b) => a - b), bytes.length];
  const parts: Uint8Array[] = [];
  for (let i = 0; i + 1 < points.length; i++) parts.push(bytes.subarray(points[i], points[i + 1]));
  return parts;
}
