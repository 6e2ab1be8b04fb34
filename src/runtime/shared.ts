/**
 * Pieces every runtime adapter shares: the inbound event state machine
 * (pause/resume, half-close ordering, exactly-once close), output batching,
 * address formatting and bind-error wrapping. Names no runtime.
 * @module
 */

import type { Addr, Listener, ListenSpec, Socket, SocketHandler } from "./types.ts";
import { DEFAULTS } from "../adjustments.ts";

/** Default size of one read (bytes); `ListenSpec.recvBytes` overrides it. */
export const DEFAULT_RECV_BYTES = 65536;

/**
 * A buffer this large is written as it is (a write costs less than copying
 * it); smaller ones queued together are concatenated into writes of about
 * this size.
 */
export const SMALL_LIMIT = 16 * 1024;

/**
 * Large buffers that only the server holds (a body Bun hands over with
 * `bytes()`, the copy Deno made of a body when its Response was made), whose
 * memory `release` gives back as soon as they are sent or copied. Left to the
 * garbage collector, that memory went back to the system and was faulted in
 * again: on Bun ~0.4 page faults and ~10% of the CPU time of a 64 KiB
 * response, on Deno a quarter of it.
 */
const releasable = new WeakSet<Uint8Array>();

/** Marks `bytes` as held by the server alone: `release` may free them. */
export function markReleasable(bytes: Uint8Array): void {
  if (
    bytes.byteLength >= SMALL_LIMIT && bytes.byteOffset === 0 &&
    bytes.byteLength === bytes.buffer.byteLength
  ) {
    releasable.add(bytes);
  }
}

/**
 * Frees the memory of `bytes` now if they were marked with `markReleasable`
 * (detaching their buffer); they must not be used again.
 */
export function release(bytes: Uint8Array): void {
  if (bytes.byteLength < SMALL_LIMIT || !releasable.delete(bytes)) return;
  (bytes.buffer as ArrayBuffer & { transfer?(length: number): ArrayBuffer }).transfer?.(0);
}

/** Default time `end()` keeps draining the peer's bytes after the FIN. */
export const DEFAULT_LINGER_MS = 2000;

/** See `OutputQueue.take`: where a large buffer goes in a scratch buffer. */
export const SCRATCH_LEAD = 4096;

/**
 * A FIFO of output buffers with a moving head, so that taking from the front
 * is O(1) and no array is shifted per write.
 */
export class OutputQueue {
  #items: Uint8Array[] = [];
  #head = 0;
  /** Bytes held in the queue. */
  bytes = 0;
  /** The last `take` returned a view of its scratch buffer. */
  usedScratch = false;

  /** Number of buffers queued. */
  get length(): number {
    return this.#items.length - this.#head;
  }

  /** Appends a buffer (empty buffers are ignored). */
  push(data: Uint8Array): void {
    if (data.byteLength === 0) return;
    this.#items.push(data);
    this.bytes += data.byteLength;
  }

  /** Puts back the unwritten tail of a buffer taken with `take`. */
  unshift(data: Uint8Array): void {
    if (data.byteLength === 0) return;
    if (this.#head > 0) this.#items[--this.#head] = data;
    else this.#items.unshift(data);
    this.bytes += data.byteLength;
  }

  /**
   * Removes and returns the next thing to write: one buffer as is when it is
   * large or alone, otherwise consecutive small ones (under `SMALL_LIMIT`)
   * concatenated until `SMALL_LIMIT` is reached, because each write call
   * costs far more than copying a few KiB. Returns `undefined` when empty.
   *
   * With `scratch` (at least `SCRATCH_LEAD` bytes), the small ones are
   * concatenated in it rather than in a new buffer, and small ones of at
   * most `SCRATCH_LEAD` bytes in all take the large buffer that follows
   * with them when it fits (a head and its 64 KiB body: one send). The
   * large one is copied to offset `SCRATCH_LEAD`, the small ones just
   * before it, so that it keeps the alignment it most likely has: copying
   * to an address a few bytes past the source's modulo 4 KiB is ~20 times
   * slower on some CPUs (4K aliasing; measured on Bun). `usedScratch` tells
   * whether the result is a view of `scratch`.
   */
  take(scratch?: Uint8Array): Uint8Array | undefined {
    const items = this.#items;
    const start = this.#head;
    if (start >= items.length) return undefined;
    let end = start + 1;
    let total = items[start].byteLength;
    while (total < SMALL_LIMIT && end < items.length && items[end].byteLength < SMALL_LIMIT) {
      total += items[end].byteLength;
      end++;
    }
    let at = 0; // where the result starts in scratch
    if (
      scratch !== undefined && total <= SCRATCH_LEAD && end < items.length &&
      items[end].byteLength <= scratch.byteLength - SCRATCH_LEAD
    ) {
      at = SCRATCH_LEAD - total;
      total += items[end].byteLength;
      end++;
    }
    let out: Uint8Array;
    this.usedScratch = false;
    if (end === start + 1) {
      out = items[start];
    } else {
      if (scratch !== undefined && at + total <= scratch.byteLength) {
        out = scratch.subarray(at, at + total);
        this.usedScratch = true;
      } else {
        out = new Uint8Array(total);
      }
      let off = 0;
      for (let i = start; i < end; i++) {
        out.set(items[i], off);
        off += items[i].byteLength;
        release(items[i]);
      }
    }
    for (let i = start; i < end; i++) items[i] = EMPTY;
    this.#head = end;
    if (this.#head === items.length) {
      // pop() is inlined; setting length calls into the runtime.
      while (items.length > 0) items.pop();
      this.#head = 0;
    } else if (this.#head > 1024 && this.#head * 2 > items.length) {
      // Compact now and then so the array does not grow without bound.
      this.#items = items.slice(this.#head);
      this.#head = 0;
    }
    this.bytes -= total;
    return out;
  }

  /** Drops everything. */
  clear(): void {
    this.#items = [];
    this.#head = 0;
    this.bytes = 0;
  }
}

const EMPTY = new Uint8Array(0);

// BaseSocket's flags.
const CLOSED = 1;
const PAUSED = 2;
/** The peer sent its FIN. */
const PEER_ENDED = 4;
/** `end()` was called: output is being flushed before the half-close. */
const ENDING = 8;
const LINGERING = 16;
/** A FIN arrived while paused and waits for `resume`. */
const HELD_END = 32;
const CLOSE_DELIVERED = 64;
/** The first flag bit a `BaseSocket` subclass may use. */
export const OWN_FLAGS = 256;

type GoneHook = (socket: BaseSocket) => void;

/**
 * What only a closing socket needs, kept out of the socket itself (an idle
 * connection's every field counts).
 */
interface Ending {
  lingerMs: number;
  lingerTimer: ReturnType<typeof setTimeout> | undefined;
  /** The close's error, kept for a socket closed before `start`. */
  closeError: Error | undefined;
}

/**
 * `BaseSocket.onGone` hooks, kept aside: few sockets are ever held by a
 * listener, and a field would cost every connection 8 bytes, enough to
 * move a Bun socket to a larger allocation size.
 */
const goneHooks = new WeakMap<BaseSocket, GoneHook>();

/**
 * The runtime-independent half of a socket: owns the handler and delivers
 * events in order and at most once. Subclasses feed it with `_data`, `_end`
 * and `_close` from whatever the runtime reports, and implement the raw
 * operations.
 */
export abstract class BaseSocket implements Socket {
  /** The peer's address. */
  abstract readonly remoteAddr: Addr;
  /** The local address. */
  abstract readonly localAddr: Addr;
  /** Bytes queued and not yet handed to the kernel. */
  abstract readonly pendingBytes: number;

  protected handler: SocketHandler | undefined;
  /**
   * The flags below, in one field (an idle connection's every field counts);
   * subclasses may use the bits from `OWN_FLAGS` up.
   */
  protected flags = PAUSED;

  /** Closed for good: no more events except the one onClose. */
  protected get isClosed(): boolean {
    return (this.flags & CLOSED) !== 0;
  }
  /** The half-close was sent; inbound bytes are now discarded. */
  protected get isLingering(): boolean {
    return (this.flags & LINGERING) !== 0;
  }

  /** Chunks that arrived while paused; allocated only when that happens. */
  #held: Uint8Array[] | undefined;
  /** Made by `end()`, or by a close before `start`. */
  #ending: Ending | undefined;

  /** Data or a FIN arrived while paused and waits for `resume`. */
  protected get isHolding(): boolean {
    return this.#held !== undefined || (this.flags & HELD_END) !== 0;
  }

  /** True once closed (by either side). */
  get closed(): boolean {
    return this.isClosed;
  }

  /** Attaches the handler and starts delivering. */
  start(handler: SocketHandler): void {
    if (this.handler) throw new Error("socket already started");
    this.handler = handler;
    if (this.isClosed) {
      // Closed before anyone listened: still owe exactly one onClose.
      queueMicrotask(() => this.#deliverClose(this.#ending?.closeError));
      return;
    }
    this.resume();
  }

  /** Stops delivering onData; the runtime stops reading. */
  pause(): void {
    if ((this.flags & (PAUSED | CLOSED)) !== 0) return;
    this.flags |= PAUSED;
    if (!this.isLingering) this.rawPause();
  }

  /** Resumes delivering onData, first what arrived while paused. */
  resume(): void {
    if ((this.flags & (PAUSED | CLOSED)) !== PAUSED || !this.handler) return;
    this.flags &= ~PAUSED;
    const handler = this.handler;
    let held = this.#held;
    while (held !== undefined && (this.flags & (PAUSED | CLOSED)) === 0) {
      const chunk = held.shift()!;
      if (held.length === 0) this.#held = undefined;
      handler.onData(chunk);
      held = this.#held;
    }
    if ((this.flags & (PAUSED | CLOSED)) !== 0) return;
    if ((this.flags & HELD_END) !== 0) {
      this.flags &= ~HELD_END;
      handler.onEnd();
      return;
    }
    if ((this.flags & (PEER_ENDED | LINGERING)) === 0) this.rawResume();
  }

  /** Graceful close: flush, half-close, drain the peer for up to lingerMs, close. */
  end(lingerMs: number = DEFAULT_LINGER_MS): void {
    if ((this.flags & (CLOSED | ENDING)) !== 0) return;
    this.flags |= ENDING;
    this.#ending = { lingerMs, lingerTimer: undefined, closeError: undefined };
    this.#held = undefined;
    this.flags &= ~HELD_END;
    if (this.pendingBytes === 0) this._flushed();
  }

  /** Closes now, discarding queued output; by a reset if asked (see `Socket.destroy`). */
  destroy(reset = false): void {
    this._close(undefined, reset);
  }

  /** Set by a listener holding this socket: called when it closes. */
  get onGone(): GoneHook | undefined {
    return goneHooks.get(this);
  }
  set onGone(hook: GoneHook | undefined) {
    if (hook) goneHooks.set(this, hook);
    else goneHooks.delete(this);
  }

  /** Closes a socket that was never handed out. */
  discard(): void {
    this._close();
    this.onGone?.(this);
  }

  /** Queues bytes for sending. */
  abstract write(data: Uint8Array): void;

  /** Stop asking the runtime for bytes. */
  protected abstract rawPause(): void;
  /** Ask the runtime for bytes again. */
  protected abstract rawResume(): void;
  /** Send the FIN (half-close). May fail silently; errors are not reported. */
  protected abstract rawHalfClose(): void;
  /**
   * Close the underlying handle, by a TCP reset when `reset` and the runtime
   * can send one. Must not throw and must not call back.
   */
  protected abstract rawClose(reset: boolean): void;

  /** Subclass: bytes arrived (owned by us). */
  protected _data(chunk: Uint8Array): void {
    if ((this.flags & (CLOSED | LINGERING | ENDING)) !== 0) return;
    if ((this.flags & PAUSED) !== 0) {
      (this.#held ??= []).push(chunk);
      this.rawPause();
      return;
    }
    this.handler!.onData(chunk);
  }

  /** Subclass: the peer sent FIN. */
  protected _end(): void {
    if ((this.flags & (CLOSED | PEER_ENDED)) !== 0) return;
    this.flags |= PEER_ENDED;
    if ((this.flags & LINGERING) !== 0) {
      this._close();
      return;
    }
    if ((this.flags & ENDING) !== 0) return;
    if ((this.flags & PAUSED) !== 0) {
      this.flags |= HELD_END;
      return;
    }
    this.handler!.onEnd();
  }

  /** Subclass: some queued bytes were handed to the kernel, and more wait. */
  protected _sent(): void {
    if (!this.isClosed) this.handler?.onSent();
  }

  /**
   * Subclass: every queued byte was handed to the kernel. Tells the owner,
   * then, if `end()` is pending, half-closes and starts lingering.
   */
  protected _flushed(): void {
    if (this.isClosed) return;
    if ((this.flags & ENDING) === 0) {
      this.handler?.onDrain();
      return;
    }
    if ((this.flags & LINGERING) !== 0) return;
    this.flags |= LINGERING;
    this.rawHalfClose();
    if (this.isClosed) return;
    const ending = this.#ending!;
    if ((this.flags & PEER_ENDED) !== 0 || ending.lingerMs <= 0) {
      this._close();
      return;
    }
    ending.lingerTimer = setTimeout(() => this._close(), ending.lingerMs);
    // Keep reading (and discarding) so the peer's late bytes do not make
    // the kernel answer our close with a reset.
    this.rawResume();
  }

  /**
   * Subclass or owner: the socket is gone. Closes the handle and reports
   * onClose once. Errors while lingering are expected (the client may reset
   * after reading its response) and are not reported.
   */
  protected _close(error?: Error, reset = false): void {
    if ((this.flags & CLOSED) !== 0) return;
    this.flags |= CLOSED;
    const ending = this.#ending;
    if (ending?.lingerTimer !== undefined) clearTimeout(ending.lingerTimer);
    this.#ending = undefined;
    this.#held = undefined;
    if (this.isLingering || isPeerGone(error)) error = undefined;
    this.rawClose(reset);
    if (this.handler) this.#deliverClose(error);
    else if (error !== undefined) {
      this.#ending = { lingerMs: 0, lingerTimer: undefined, closeError: error };
    }
  }

  #deliverClose(error: Error | undefined): void {
    if ((this.flags & CLOSE_DELIVERED) !== 0) return;
    this.flags |= CLOSE_DELIVERED;
    this.handler!.onClose(error);
  }
}

// What Node and Bun (`code`) and Deno (`name`) call a peer that reset or
// went away: a client leaving, reported as a plain close, not an error (as
// waitress does).
const PEER_GONE = new Set([
  "ECONNRESET",
  "EPIPE",
  "ECONNABORTED",
  "ENOTCONN",
  "ESHUTDOWN",
  "ConnectionReset",
  "BrokenPipe",
  "ConnectionAborted",
  "NotConnected",
]);

function isPeerGone(error: Error | undefined): boolean {
  if (error === undefined) return false;
  return PEER_GONE.has((error as { code?: string }).code ?? "") || PEER_GONE.has(error.name);
}

/** Formats an address for messages: `127.0.0.1:80`, `[::1]:80`, `unix:/p`. */
export function formatAddr(addr: Addr | ListenSpec): string {
  if (addr.transport === "unix") return `unix:${addr.path ?? ""}`;
  const host = addr.hostname ?? "";
  return host.includes(":") ? `[${host}]:${addr.port}` : `${host}:${addr.port}`;
}

/**
 * Wraps a bind failure in an Error naming the address, keeping the original
 * as `cause`. `reason` is derived from the error's code or class name.
 */
export function bindError(spec: ListenSpec, cause: unknown): Error {
  const e = cause as { code?: unknown; name?: unknown; message?: unknown } | undefined;
  const code = typeof e?.code === "string" ? e.code : "";
  const name = typeof e?.name === "string" ? e.name : "";
  let reason: string;
  if (code === "EADDRINUSE" || name === "AddrInUse") reason = "address already in use";
  else if (code === "EACCES" || code === "EPERM" || name === "PermissionDenied") {
    reason = "permission denied";
  } else if (name === "NotCapable") reason = "permission denied (run with --allow-net)";
  else if (code === "EADDRNOTAVAIL" || name === "AddrNotAvailable") {
    reason = "address not available";
  } else if (code === "ENOENT" || name === "NotFound") reason = "no such file or directory";
  else reason = typeof e?.message === "string" ? e.message : String(cause);
  return new Error(`cannot listen on ${formatAddr(spec)}: ${reason}`, { cause });
}

/** Normalises any thrown value to an Error. */
export function toError(value: unknown): Error {
  return value instanceof Error ? value : new Error(String(value));
}

/**
 * A listener for runtimes that cannot stop accepting (Bun, node:net): it
 * hands accepted sockets to its owner, holding them (paused, in order) while
 * accepting is paused or before `start`. It holds at most `backlog` of them,
 * as the kernel's queue would, and closes the ones beyond: else a flood past
 * `connectionLimit` would still take a descriptor per client. Subclasses
 * bind, `offer` what they accept, and call `closeGate` when closed.
 */
export abstract class GatedListener implements Listener {
  abstract readonly addr: Addr;
  #onConnection: ((socket: Socket) => void) | undefined;
  #accepting = true;
  #closed = false;
  #held = new Set<BaseSocket>();
  readonly #holdLimit: number;

  constructor(backlog: number | undefined) {
    // Linux queues one connection even with a backlog of 0.
    this.#holdLimit = Math.max(1, backlog ?? DEFAULTS.backlog);
  }

  /** Starts handing sockets out, first the held ones. */
  start(onConnection: (socket: Socket) => void): void {
    if (this.#onConnection) throw new Error("listener already started");
    this.#onConnection = onConnection;
    this.#release();
  }

  /** Pauses or resumes handing sockets out. */
  setAccepting(accepting: boolean): void {
    this.#accepting = accepting;
    if (accepting) this.#release();
  }

  abstract close(): Promise<void>;

  /**
   * A newly accepted socket: handed out now, closed if the listener is
   * closed, or held. Returns true when held (the caller pauses its reads).
   */
  protected offer(socket: BaseSocket): boolean {
    if (this.#closed || (!this.#handsOut() && this.#held.size >= this.#holdLimit)) {
      socket.discard();
      return false;
    }
    if (this.#handsOut()) {
      this.#onConnection!(socket);
      return false;
    }
    socket.onGone = (gone) => this.#held.delete(gone);
    this.#held.add(socket);
    return true;
  }

  /** Closes every held socket; later offers are closed at once. */
  protected closeGate(): void {
    if (this.#closed) return;
    this.#closed = true;
    const held = [...this.#held];
    this.#held.clear();
    for (const socket of held) socket.discard();
  }

  #handsOut(): boolean {
    return this.#accepting && this.#onConnection !== undefined;
  }

  #release(): void {
    for (const socket of this.#held) {
      if (!this.#accepting || this.#closed || !this.#onConnection) return;
      this.#held.delete(socket);
      socket.onGone = undefined;
      this.#onConnection(socket);
    }
  }
}
