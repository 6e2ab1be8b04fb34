/**
 * Helpers for the reliability tests: a seeded PRNG, a strict HTTP response
 * checker (every received byte must belong to a well-formed response), a
 * forced GC for heap checks, percentiles and a small concurrency pool.
 * Builds on `tests/helpers/http_client.ts` (RawClient, withServer).
 * @module
 */
import * as v8 from "node:v8";
import * as vm from "node:vm";
import { fromLatin1, RawClient, sleep } from "../helpers/http_client.ts";

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

/** What one scripted connection saw. */
export interface Outcome {
  data: Uint8Array;
  /** The server closed (FIN or reset) before the deadline. */
  closed: boolean;
  /** A socket error (e.g. ECONNRESET) ended it. */
  error: Error | null;
}

/**
 * Connects, sends `parts` with `pauses[i]` ms before part i (default 0),
 * optionally half-closes, and waits until the server closes or `ms` pass.
 */
export async function script(
  port: number,
  parts: Uint8Array[],
  options: { pauses?: number[]; halfClose?: boolean; ms?: number } = {},
): Promise<Outcome> {
  const client = await RawClient.connect(port);
  try {
    for (let i = 0; i < parts.length; i++) {
      const pause = options.pauses?.[i] ?? 0;
      if (pause > 0) await sleep(pause);
      if (client.ended) break;
      client.send(parts[i]);
    }
    if (options.halfClose && !client.ended) client.shutdown();
    try {
      await client.until(() => false, options.ms ?? 5000);
    } catch { /* deadline: reported as not closed */ }
    return { data: client.received, closed: client.ended, error: client.error };
  } finally {
    client.close();
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
