/**
 * The runtime-independent half of a socket: the inbound event state machine
 * (pause/resume, half-close ordering, lingering, exactly-once close) that
 * every adapter feeds with what its runtime reports. Names no runtime.
 * @module
 */

import type { Addr, Socket, SocketHandler } from "./types.ts";

/** Default size of one read (bytes); `ListenSpec.recvBytes` overrides it. */
export const DEFAULT_RECV_BYTES = 65536;

/** Default time `end()` keeps draining the peer's bytes after the FIN. */
export const DEFAULT_LINGER_MS = 2000;

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
