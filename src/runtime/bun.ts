/**
 * Bun adapter: `Bun.listen` with `allowHalfOpen: true`. Bun's
 * `socket.write` writes what fits and drops the rest, so this keeps its own
 * output queue and retries from `drain`.
 * @module
 */

// Imported, not the global: Deno type-checks this file too, and before 2.8
// its types have no global `setImmediate` (the same function on Bun).
import { setImmediate } from "node:timers";
import type { Addr, Listener, ListenSpec, Runtime } from "./types.ts";
import { BaseSocket, OWN_FLAGS } from "./base_socket.ts";
import { GatedListener } from "./listener_gate.ts";
import { bindError, toError } from "./messages.ts";
import { OutputQueue, release, SCRATCH_LEAD, SMALL_LIMIT } from "./output_queue.ts";
import { type UnixSocketFile, unixSocketFile } from "./unix_socket.ts";
import { isIPv4Address } from "../parser.ts";

/** The part of Bun's socket this adapter uses. */
interface BunRawSocket {
  data: BunSocket | undefined;
  readonly remoteAddress: string | null;
  readonly remotePort?: number;
  readonly localAddress?: string | null;
  readonly localPort?: number;
  write(data: Uint8Array, byteOffset?: number, byteLength?: number): number;
  shutdown(halfClose?: boolean): void;
  end(): void;
  terminate(): void;
  pause(): void;
  resume(): void;
  setNoDelay?(enabled: boolean): boolean;
}

/** The part of Bun's listener this adapter uses. */
interface BunRawListener {
  readonly port?: number;
  readonly hostname?: string;
  stop(closeActiveConnections?: boolean): void;
}

interface BunHandlers {
  open(socket: BunRawSocket): void;
  data(socket: BunRawSocket, chunk: Uint8Array): void;
  drain(socket: BunRawSocket): void;
  end(socket: BunRawSocket): void;
  close(socket: BunRawSocket, error?: Error): void;
  error(socket: BunRawSocket, error: Error): void;
}

interface BunGlobal {
  listen(options: Record<string, unknown> & { socket: BunHandlers }): BunRawListener;
}

declare const Bun: BunGlobal;

/**
 * Sockets with output to send, flushed together by one callback for all of
 * them (so no socket needs a callback of its own). Small output waits for
 * the end of the event loop's iteration (`setImmediate`): the responses to
 * every request that arrived in it then leave in one burst. Sent one by one
 * as each request was answered, each send had to wake the client's process
 * again (`sock_def_readable` was a tenth of our CPU time in `perf`); in a
 * burst the client is still busy with the first. With 50 keep-alive
 * clients that cut the CPU time of a small response from ~21.7 to ~17.9 µs.
 * Output of `SMALL_LIMIT` or more leaves at the end of the current turn (a
 * microtask): holding it would only make a stream read further ahead.
 */
let flushList: BunSocket[] = [];
let spareList: BunSocket[] = [];
let flushSoon = false;
let flushLater = false;

function flushSoonTask(): void {
  flushSoon = false;
  flushAll();
}

function flushLaterTask(): void {
  flushLater = false;
  flushAll();
}

/**
 * What a flush sends is merged into this one buffer (Bun's write is
 * synchronous, so one serves every socket): a head and its body go out in
 * one send instead of two, and the merge allocates nothing. A socket whose
 * send Bun took only partly holds it until the rest is sent, so the rest is
 * never copied out; meanwhile the others send their buffers as they are.
 */
const scratch = new Uint8Array(SCRATCH_LEAD + 128 * 1024);
let scratchHolder: BunSocket | null = null;

function flushAll(): void {
  const list = flushList;
  flushList = spareList;
  for (let i = 0; i < list.length; i++) list[i].flushNow();
  while (list.length > 0) list.pop(); // cheaper than setting length
  spareList = list;
}

/** A queue holding `first`, then `second`. */
function queueOf(first: Uint8Array, second: Uint8Array): OutputQueue {
  const queue = new OutputQueue();
  queue.push(first);
  queue.push(second);
  return queue;
}

/**
 * The peer address made last, frozen: a connection's pipelined requests,
 * and requests in a row from one client, share it (one made for every
 * request was ~2% of a pipelined request's time).
 */
let lastPeer: Addr = Object.freeze({ transport: "unix", path: "\0" });

/** Queued for the end-of-turn flush. */
const SCHEDULED = OWN_FLAGS;
/** Bun took a send only partly: the rest waits for its drain. */
const WAITING_DRAIN = OWN_FLAGS * 2;
/** `flags` holds the peer's port times this, above the flags. */
const PORT_UNIT = OWN_FLAGS * 4;

/** One accepted Bun connection. */
class BunSocket extends BaseSocket {
  readonly localAddr: Addr;
  /**
   * The peer's IP address (or socket path) as Bun gave it, and its port in
   * `flags`: Bun forgets them once the socket closes, and an object made
   * only when someone asks costs idle connections nothing.
   */
  #peer: string;
  #sock: BunRawSocket;
  /**
   * Output not yet sent, in order: one buffer (the usual case), or a queue
   * once more than one waits. The tail of a send Bun took only partly goes
   * back in front. Idle connections hold none.
   */
  #queued: Uint8Array | OutputQueue | undefined;
  constructor(sock: BunRawSocket, localAddr: Addr) {
    super();
    this.#sock = sock;
    this.localAddr = localAddr;
    // A peer that reset right after connecting may have no address left.
    this.#peer = sock.remoteAddress ?? "";
    if (localAddr.transport === "tcp") {
      this.flags += (sock.remotePort ?? 0) * PORT_UNIT;
      try {
        sock.setNoDelay?.(true);
      } catch { /* closed already; close arrives next */ }
    }
  }

  get remoteAddr(): Addr {
    const peer = this.#peer;
    const last = lastPeer;
    if (this.localAddr.transport === "unix") {
      if (last.transport === "unix" && last.path === peer) return last;
      return lastPeer = Object.freeze({ transport: "unix", path: peer });
    }
    const port = Math.floor(this.flags / PORT_UNIT);
    if (last.hostname === peer && last.port === port && last.transport === "tcp") return last;
    return lastPeer = Object.freeze({ transport: "tcp", hostname: peer, port });
  }

  get pendingBytes(): number {
    const queued = this.#queued;
    if (queued === undefined) return 0;
    return queued instanceof OutputQueue ? queued.bytes : queued.byteLength;
  }

  write(data: Uint8Array): void {
    if (this.isClosed || this.isLingering || data.byteLength === 0) return;
    const queued = this.#queued;
    if (queued === undefined) this.#queued = data;
    else if (queued instanceof OutputQueue) queued.push(data);
    else this.#queued = queueOf(queued, data);
    if ((this.flags & WAITING_DRAIN) !== 0) return; // the drain flushes
    if ((this.flags & SCHEDULED) === 0) {
      this.flags |= SCHEDULED;
      flushList.push(this);
    }
    if (this.pendingBytes >= SMALL_LIMIT) {
      if (!flushSoon) {
        flushSoon = true;
        queueMicrotask(flushSoonTask);
      }
    } else if (!flushLater && !flushSoon) {
      flushLater = true;
      setImmediate(flushLaterTask);
    }
  }

  /** The shared flush (see `flushList`). */
  flushNow(): void {
    this.flags &= ~SCHEDULED;
    this.#flush();
  }

  /** The next buffer to send, taken out of the queue. */
  #next(): Uint8Array | undefined {
    const queued = this.#queued;
    if (!(queued instanceof OutputQueue)) {
      this.#queued = undefined;
      return queued;
    }
    const chunk = queued.take(scratchHolder === null ? scratch : undefined);
    if (queued.usedScratch) scratchHolder = this;
    if (queued.length === 0) this.#queued = undefined;
    return chunk;
  }

  /** Puts the unsent tail of a send back in front. */
  #putBack(tail: Uint8Array): void {
    const queued = this.#queued;
    if (queued === undefined) this.#queued = tail;
    else if (queued instanceof OutputQueue) queued.unshift(tail);
    else this.#queued = queueOf(tail, queued);
  }

  #releaseScratch(): void {
    if (scratchHolder === this) scratchHolder = null;
  }

  #flush(): void {
    if ((this.flags & WAITING_DRAIN) !== 0 || this.isClosed) return;
    const sock = this.#sock;
    let chunk = this.#next();
    let moved = false;
    while (chunk !== undefined) {
      const n = sock.write(chunk);
      if (n < 0) {
        this._close(); // the socket is gone: a peer that left
        return;
      }
      if (n < chunk.byteLength) {
        // Bun dropped the rest; keep it and retry when Bun says drain.
        this.#putBack(n === 0 ? chunk : chunk.subarray(n));
        this.flags |= WAITING_DRAIN;
        if (moved || n > 0) this._sent();
        return;
      }
      moved = true;
      release(chunk); // Bun copied it to the kernel
      this.#releaseScratch();
      chunk = this.#next();
    }
    this._flushed();
  }

  /** Bun: the socket is writable again. */
  bunDrain(): void {
    // Bun also fires drain spuriously (around pause/resume); only a drain
    // we are waiting for means anything.
    if ((this.flags & WAITING_DRAIN) === 0) return;
    this.flags &= ~WAITING_DRAIN;
    this.#flush();
  }

  /**
   * Bun: bytes arrived (a fresh Buffer per callback, safe to keep), passed on
   * as they are: a plain Uint8Array view would cost ~2 µs, since reading
   * `.buffer` makes Bun create the ArrayBuffer object. Body bytes become
   * plain Uint8Arrays when they reach the app.
   */
  bunData(chunk: Uint8Array): void {
    this._data(chunk);
  }

  /** Bun: the peer sent FIN. */
  bunEnd(): void {
    this._end();
  }

  /** Bun: the socket closed (with an error on reset). */
  bunClose(error?: Error): void {
    this._close(error);
    this.onGone?.(this);
  }

  protected rawPause(): void {
    this.#sock.pause();
  }

  protected rawResume(): void {
    this.#sock.resume();
  }

  protected rawHalfClose(): void {
    try {
      this.#sock.shutdown();
    } catch { /* already closed */ }
  }

  protected rawClose(reset: boolean): void {
    this.#releaseScratch();
    this.#queued = undefined;
    this.flags &= ~WAITING_DRAIN;
    try {
      // end(), unless a reset is asked for: everything we wrote still goes out, then FIN.
      if (reset) this.#sock.terminate();
      else this.#sock.end();
    } catch { /* already closed */ }
  }
}

/** A bound Bun listener (Bun cannot stop accepting: see `GatedListener`). */
class BunListener extends GatedListener {
  addr: Addr;
  #raw: BunRawListener | undefined;
  #unixFile: UnixSocketFile | undefined;
  /** The last local address made: connections on the same one share it. */
  #local: Addr | undefined;
  /** Every connection's local address, when the listener's says it (a specific IPv4 one). */
  #fixedLocal: Addr | undefined;

  constructor(addr: Addr, unixFile: UnixSocketFile | undefined, backlog: number | undefined) {
    super(backlog);
    this.addr = addr;
    this.#unixFile = unixFile;
  }

  /** Bun.listen's socket handlers, routed to our wrappers. */
  handlers(): BunHandlers {
    return {
      open: (sock) => {
        const s = new BunSocket(sock, this.#localAddrOf(sock));
        sock.data = s;
        // Data before start() is held (and reading paused) by the base class.
        if (this.offer(s)) sock.pause();
      },
      data: (sock, chunk) => sock.data?.bunData(chunk),
      drain: (sock) => sock.data?.bunDrain(),
      end: (sock) => sock.data?.bunEnd(),
      close: (sock, error) => sock.data?.bunClose(error),
      error: (sock, error) => sock.data?.bunClose(toError(error)),
    };
  }

  /**
   * The address `sock` arrived on. One object serves every connection on the
   * same address (an idle connection's state is small enough for that to
   * matter), frozen since apps see it.
   */
  #localAddrOf(sock: BunRawSocket): Addr {
    const addr = this.addr;
    if (addr.transport === "unix") return addr;
    // Bun keeps the string it makes, 32 bytes more for every connection: ask
    // only when the listener's own address does not say it.
    if (this.#fixedLocal !== undefined) return this.#fixedLocal;
    const hostname = sock.localAddress ?? addr.hostname;
    const port = sock.localPort ?? addr.port;
    const last = this.#local;
    if (last !== undefined && last.hostname === hostname && last.port === port) return last;
    return this.#local = Object.freeze({ transport: "tcp", hostname, port });
  }

  /** Records Bun's listener once bound. */
  bound(raw: BunRawListener): void {
    this.#raw = raw;
    if (this.addr.transport === "tcp") {
      const hostname = this.addr.hostname;
      this.addr = { transport: "tcp", hostname, port: raw.port };
      if (hostname !== undefined && isIPv4Address(hostname) && hostname !== "0.0.0.0") {
        this.#fixedLocal = Object.freeze({ transport: "tcp", hostname, port: raw.port });
      }
    }
  }

  close(): Promise<void> {
    this.closeGate();
    try {
      this.#raw?.stop(false);
    } catch { /* already stopped */ }
    this.#unixFile?.remove();
    this.#unixFile = undefined;
    return Promise.resolve();
  }
}

/**
 * The Bun runtime. `Bun.listen` has no backlog option: `backlog` only bounds
 * how many accepted connections are held while accepting is paused.
 */
export const bunRuntime: Runtime = {
  name: "bun",
  async listen(spec: ListenSpec): Promise<Listener> {
    const unixFile = spec.transport === "unix" ? await unixSocketFile(spec.path) : undefined;
    return listenNow(spec, unixFile);
  },
};

function listenNow(spec: ListenSpec, unixFile: UnixSocketFile | undefined): Listener {
  const addr: Addr = spec.transport === "unix"
    ? Object.freeze({ transport: "unix", path: spec.path })
    : { transport: "tcp", hostname: spec.hostname, port: spec.port };
  const listener = new BunListener(addr, unixFile, spec.backlog);
  const common = { allowHalfOpen: true, socket: listener.handlers() };
  let raw: BunRawListener;
  try {
    if (spec.transport === "unix") {
      raw = Bun.listen({ unix: unixFile!.bindPath, ...common });
    } else {
      raw = Bun.listen({
        hostname: spec.hostname,
        port: spec.port,
        ...(spec.reusePort ? { reusePort: true } : {}),
        ...common,
      });
    }
  } catch (e) {
    throw bindError(spec, e);
  }
  listener.bound(raw);
  if (spec.transport === "unix") {
    try {
      unixFile!.install(spec.perms);
    } catch (e) {
      listener.close();
      throw bindError(spec, e);
    }
  }
  return listener;
}
