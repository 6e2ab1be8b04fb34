/**
 * Helpers for the runtime socket tests: a recording SocketHandler, node:net
 * clients, and small waiting utilities. Test-only.
 * @module
 */

import { connect, type Socket as NetSocket } from "node:net";
import type { Addr, Socket, SocketHandler } from "../../src/runtime/types.ts";

/** Events one server-side socket delivered, in order. */
export interface Recorder extends SocketHandler {
  socket: Socket;
  chunks: Uint8Array[];
  received: number;
  ends: number;
  drains: number;
  /** onSent calls: partial progress of a write the peer is slow to read. */
  sends: number;
  closes: (Error | undefined)[];
  /** Resolves on the first onClose. */
  closed: Promise<Error | undefined>;
  /** Resolves on onEnd. */
  ended: Promise<void>;
  /** Resolves when at least `n` bytes have arrived. */
  bytes(n: number): Promise<void>;
  /** All received bytes concatenated. */
  data(): Uint8Array;
}

/** Starts `socket` with a handler that records everything. */
export function record(
  socket: Socket,
  onData?: (chunk: Uint8Array, r: Recorder) => void,
): Recorder {
  let resolveClose!: (e: Error | undefined) => void;
  let resolveEnd!: () => void;
  const waiters: { n: number; resolve: () => void }[] = [];
  const r: Recorder = {
    socket,
    chunks: [],
    received: 0,
    ends: 0,
    drains: 0,
    sends: 0,
    closes: [],
    closed: new Promise((res) => (resolveClose = res)),
    ended: new Promise((res) => (resolveEnd = res)),
    bytes(n) {
      if (r.received >= n) return Promise.resolve();
      return new Promise((resolve) => waiters.push({ n, resolve }));
    },
    data() {
      return concat(r.chunks);
    },
    onData(chunk) {
      r.chunks.push(chunk);
      r.received += chunk.byteLength;
      for (let i = waiters.length - 1; i >= 0; i--) {
        if (r.received >= waiters[i].n) waiters.splice(i, 1)[0].resolve();
      }
      onData?.(chunk, r);
    },
    onEnd() {
      r.ends++;
      resolveEnd();
    },
    onDrain() {
      r.drains++;
    },
    onSent() {
      r.sends++;
    },
    onClose(error) {
      r.closes.push(error);
      resolveClose(error);
    },
  };
  socket.start(r);
  return r;
}

/** Concatenates byte arrays. */
export function concat(chunks: Uint8Array[]): Uint8Array {
  let total = 0;
  for (const c of chunks) total += c.byteLength;
  const out = new Uint8Array(total);
  let off = 0;
  for (const c of chunks) {
    out.set(c, off);
    off += c.byteLength;
  }
  return out;
}

/** `n` bytes of a position-dependent pattern (detects loss and reordering). */
export function pattern(n: number, start = 0): Uint8Array {
  const out = new Uint8Array(n);
  for (let i = 0; i < n; i++) out[i] = (start + i) % 251;
  return out;
}

/** Index of the first byte that breaks `pattern`, or -1. */
export function checkPattern(data: Uint8Array, start = 0): number {
  for (let i = 0; i < data.byteLength; i++) {
    if (data[i] !== (start + i) % 251) return i;
  }
  return -1;
}

/** A node:net client that records what it receives. */
export interface Client {
  sock: NetSocket;
  chunks: Uint8Array[];
  received: number;
  /** Resolves on the peer's FIN. */
  ended: Promise<void>;
  /** Resolves when the socket is closed; carries the error, if any. */
  closed: Promise<Error | undefined>;
  /** Resolves when at least `n` bytes have arrived. */
  bytes(n: number): Promise<void>;
  data(): Uint8Array;
}

/** Connects a node:net client to `addr` (allowHalfOpen: it half-closes itself). */
export function client(addr: Addr): Promise<Client> {
  return new Promise((resolve, reject) => {
    const sock = addr.transport === "unix"
      ? connect({ path: addr.path!, allowHalfOpen: true })
      : connect({ host: addr.hostname, port: addr.port!, allowHalfOpen: true });
    let resolveEnd!: () => void;
    let resolveClose!: (e: Error | undefined) => void;
    let error: Error | undefined;
    const waiters: { n: number; resolve: () => void }[] = [];
    const c: Client = {
      sock,
      chunks: [],
      received: 0,
      ended: new Promise((res) => (resolveEnd = res)),
      closed: new Promise((res) => (resolveClose = res)),
      bytes(n) {
        if (c.received >= n) return Promise.resolve();
        return new Promise((res) => waiters.push({ n, resolve: res }));
      },
      data() {
        return concat(c.chunks);
      },
    };
    sock.on("data", (b: Uint8Array) => {
      c.chunks.push(new Uint8Array(b));
      c.received += b.byteLength;
      for (let i = waiters.length - 1; i >= 0; i--) {
        if (c.received >= waiters[i].n) waiters.splice(i, 1)[0].resolve();
      }
    });
    sock.on("end", () => resolveEnd());
    sock.on("error", (e: Error) => {
      error = e;
      reject(e);
    });
    sock.on("close", () => resolveClose(error));
    sock.once("connect", () => resolve(c));
  });
}

/** Resolves after `ms` milliseconds. */
export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Polls `cond` every 5 ms until it is true or `ms` pass (then rejects). */
export async function until(cond: () => boolean, ms = 5000, what = "condition"): Promise<void> {
  const deadline = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(5);
  }
}

/** `promise`, or a rejection naming `what` after `ms`: a test fails rather than hangs. */
export function within<T>(promise: Promise<T>, ms = 5000, what = "promise"): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out waiting for ${what}`)), ms);
  });
  return Promise.race([promise, late]).finally(() => clearTimeout(timer));
}

/** A promise with its resolve function. */
export function deferred<T>(): { promise: Promise<T>; resolve: (v: T) => void } {
  let resolve!: (v: T) => void;
  const promise = new Promise<T>((res) => (resolve = res));
  return { promise, resolve };
}

/** Which runtime runs the tests. */
export const RUNTIME: "deno" | "bun" | "node" =
  typeof (globalThis as { Deno?: unknown }).Deno !== "undefined"
    ? "deno"
    : typeof (globalThis as { Bun?: unknown }).Bun !== "undefined"
    ? "bun"
    : "node";

/** The major and minor version of the runtime that runs the tests. */
export const RUNTIME_VERSION: [number, number] = (() => {
  // deno-lint-ignore no-explicit-any
  const g = globalThis as any;
  const version: string = g.Deno?.version?.deno ?? g.Bun?.version ?? g.process.versions.node;
  const [major, minor] = version.split(".").map(Number);
  return [major, minor];
})();

/**
 * Node 24's Blob stream tells its end a macrotask later than its bytes: a
 * Blob body is not all there at once, so it goes out chunked.
 */
export const BLOB_ENDS_LATE = RUNTIME === "node" && RUNTIME_VERSION[0] >= 24;
