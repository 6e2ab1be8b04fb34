/**
 * Deno adapter: `Deno.listen` + `conn.read()/write()` (the streams API is
 * about 3x slower). Hides partial writes, half-close, resets and the
 * `reusePort` hard exit.
 * @module
 */

import type { Addr, Listener, ListenSpec, Runtime, Socket } from "./types.ts";
import { BaseSocket, DEFAULT_RECV_BYTES } from "./base_socket.ts";
import { bindError, formatAddr, toError } from "./messages.ts";
import { OutputQueue, release, SCRATCH_LEAD } from "./output_queue.ts";
import { allocate } from "../slab.ts";
import { type UnixSocketFile, unixSocketFile } from "./unix_socket.ts";

type Conn = Deno.Conn;

/** Converts a Deno address to ours (unix peers have a null path). */
function toAddr(addr: Deno.Addr): Addr {
  if (addr.transport === "tcp" || addr.transport === "udp") {
    return Object.freeze({ transport: "tcp", hostname: addr.hostname, port: addr.port });
  }
  if (addr.transport === "unix" || addr.transport === "unixpacket") {
    return Object.freeze({ transport: "unix", path: addr.path ?? "" });
  }
  return Object.freeze({ transport: "tcp" });
}

const RESOLVED = Promise.resolve();

/** The largest read buffer a bulk upload grows to (bytes). */
const MAX_READ = 256 * 1024;

/**
 * Buffers a flush merges its output into (see `OutputQueue.take`), so that a
 * head or a chunk's size line goes out in one send with the data after it:
 * sent apart, those few bytes cost an extra segment and an extra wake-up of
 * the peer, several times what copying 64 KiB costs. Deno's writes are
 * asynchronous, so a flush borrows a buffer for each merged send until it
 * is done. At most `MAX_LENT` are out at once (a flush that finds none sends
 * its buffers as they are) and as many are kept for reuse: 2 MiB at most.
 */
const SCRATCH_BYTES = SCRATCH_LEAD + 128 * 1024;
const MAX_LENT = 16;
const spareScratch: Uint8Array[] = [];
let lentScratch = 0;

function borrowScratch(): Uint8Array | undefined {
  if (lentScratch >= MAX_LENT) return undefined;
  lentScratch++;
  return spareScratch.pop() ?? new Uint8Array(SCRATCH_BYTES);
}

function giveBackScratch(scratch: Uint8Array): void {
  lentScratch--;
  spareScratch.push(scratch);
}

/** EMFILE / ENFILE: the process or system is out of file descriptors. */
function isResourceError(e: unknown): boolean {
  return e instanceof Error && /Too many open files|os error 2[34]\b/.test(e.message);
}

/** Errors a read or write can end with when our own close raced it. */
function isOwnCloseError(e: unknown): boolean {
  return e instanceof Deno.errors.Interrupted || e instanceof Deno.errors.BadResource;
}

/** One accepted Deno connection. */
class DenoSocket extends BaseSocket {
  readonly remoteAddr: Addr;
  readonly localAddr: Addr;
  #conn: Conn;
  #out = new OutputQueue();
  /** Bytes taken from the queue and being written right now. */
  #inFlight = 0;
  #writing = false;
  #reading = false;
  #wantRead = false;
  #recvBytes: number;
  #buf: Uint8Array;

  /** `localAddr`: the listener's, for a unix socket (see `DenoListener`). */
  constructor(conn: Conn, recvBytes: number, localAddr: Addr | undefined) {
    super();
    this.#conn = conn;
    this.#recvBytes = recvBytes;
    this.#buf = new Uint8Array(recvBytes);
    this.remoteAddr = toAddr(conn.remoteAddr);
    this.localAddr = localAddr ?? toAddr(conn.localAddr);
    const tcp = conn as Partial<Deno.TcpConn>;
    try {
      tcp.setNoDelay?.(true);
    } catch {
      // A connection reset before we got here; the first read reports it.
    }
  }

  get pendingBytes(): number {
    return this.#out.bytes + this.#inFlight;
  }

  write(data: Uint8Array): void {
    if (this.isClosed || this.isLingering || data.byteLength === 0) return;
    this.#out.push(data);
    if (!this.#writing) {
      this.#writing = true;
      // Start on a microtask so that every write made in the same turn
      // (e.g. pipelined responses) is coalesced into one syscall. (A
      // resolved promise's then() costs a third of Deno's queueMicrotask.)
      RESOLVED.then(this.#startFlush);
    }
  }

  /** Bound once, so scheduling a flush allocates no closure. */
  #startFlush = (): void => {
    this.#flush();
  };

  async #flush(): Promise<void> {
    const conn = this.#conn;
    const out = this.#out;
    // Lent only while it holds bytes not yet sent.
    let lent: Uint8Array | undefined;
    try {
      while (!this.isClosed) {
        // Merging needs more than one buffer queued.
        lent = out.length > 1 ? borrowScratch() : undefined;
        let chunk = out.take(lent);
        if (lent !== undefined && !out.usedScratch) {
          giveBackScratch(lent);
          lent = undefined;
        }
        if (chunk === undefined) break;
        this.#inFlight = chunk.byteLength;
        let off = 0;
        while (off < chunk.byteLength) {
          off += await conn.write(off === 0 ? chunk : chunk.subarray(off));
          if (this.isClosed) return;
          if (off < chunk.byteLength || out.length > 0) this._sent();
          this.#inFlight = chunk.byteLength - off;
          if (lent !== undefined && off < chunk.byteLength) {
            // The peer is slow to read: it keeps a copy of the rest, not
            // the scratch buffer.
            chunk = chunk.slice(off);
            off = 0;
            giveBackScratch(lent);
            lent = undefined;
          }
        }
        if (lent !== undefined) {
          giveBackScratch(lent);
          lent = undefined;
        } else {
          release(chunk); // sent as it was: a body only we hold is freed now
        }
      }
    } catch (e) {
      this.#inFlight = 0;
      this.#writing = false;
      if (!isOwnCloseError(e)) this._close(toError(e));
      else this._close();
      return;
    } finally {
      if (lent !== undefined) giveBackScratch(lent);
    }
    this.#inFlight = 0;
    this.#writing = false;
    if (!this.isClosed) this._flushed();
  }

  protected rawPause(): void {
    this.#wantRead = false;
  }

  protected rawResume(): void {
    this.#wantRead = true;
    if (!this.#reading) this.#readLoop();
  }

  async #readLoop(): Promise<void> {
    this.#reading = true;
    const conn = this.#conn;
    try {
      // While paused, one more read stays outstanding (its bytes are held,
      // so memory stays bounded) so that a reset or FIN is still noticed.
      while (!this.isClosed && (this.#wantRead || !this.isHolding)) {
        const buf = this.#buf;
        const n = await conn.read(buf);
        if (this.isClosed) break;
        if (n === null) {
          this._end();
          break;
        }
        if (n === 0) continue;
        let chunk: Uint8Array;
        if (n * 2 > buf.byteLength) {
          // A big read: hand the buffer itself over and start a new one;
          // twice as large while reads come back full (a bulk upload: fewer
          // reads), back to recvBytes otherwise (idle connections stay small).
          chunk = buf.subarray(0, n);
          // The app may get this buffer (a body read whole): no bytes of
          // earlier reads may linger past the chunk.
          if (n < buf.byteLength) buf.fill(0, n);
          const size = n === buf.byteLength
            ? Math.min(buf.byteLength * 2, Math.max(MAX_READ, this.#recvBytes))
            : this.#recvBytes;
          this.#buf = new Uint8Array(size);
        } else {
          // A small read: copied, into a shared slab when it is small enough
          // (body bytes are copied out of it before the app sees them).
          chunk = allocate(n);
          chunk.set(buf.subarray(0, n));
          // Reads are small again: an idle connection keeps no grown buffer.
          if (buf.byteLength > this.#recvBytes) this.#buf = new Uint8Array(this.#recvBytes);
        }
        // Delivered even if paused meanwhile: the base class holds it.
        this._data(chunk);
      }
    } catch (e) {
      if (!this.isClosed) {
        if (isOwnCloseError(e)) this._close();
        else this._close(toError(e));
      }
    }
    this.#reading = false;
  }

  protected rawHalfClose(): void {
    this.#conn.closeWrite().catch(() => {
      // The peer is gone already; the read side reports the close.
    });
  }

  /** Deno has no way to send a reset: a reset is a close. */
  protected rawClose(_reset: boolean): void {
    this.#out.clear();
    this.#inFlight = 0;
    try {
      this.#conn.close();
    } catch {
      // Already closed.
    }
  }
}

/** A bound Deno listener. */
class DenoListener implements Listener {
  readonly addr: Addr;
  #listener: Deno.Listener;
  #recvBytes: number;
  #onConnection: ((socket: Socket) => void) | undefined;
  #onWaiting: (() => void) | undefined;
  #accepting = true;
  /** The accept loop while it runs (an `accept()` is pending). */
  #loop: Promise<void> | null = null;
  #closed = false;
  /** The connection accepted while paused (at most one; see #acceptLoop). */
  #held: Conn[] = [];
  #retryTimer: ReturnType<typeof setTimeout> | undefined;
  /** Accept errors in a row (a spinning guard). */
  #failures = 0;
  #unixFile: UnixSocketFile | undefined;

  constructor(listener: Deno.Listener, recvBytes: number, unixFile: UnixSocketFile | undefined) {
    this.#listener = listener;
    this.#recvBytes = recvBytes;
    this.#unixFile = unixFile;
    // Deno knows a unix socket by the name it was bound under.
    this.addr = unixFile
      ? Object.freeze({ transport: "unix", path: unixFile.path })
      : toAddr(listener.addr);
  }

  start(onConnection: (socket: Socket) => void, onWaiting?: () => void): void {
    if (this.#onConnection) throw new Error("listener already started");
    this.#onConnection = onConnection;
    this.#onWaiting = onWaiting;
    this.#pump();
  }

  /** A connection is held (see `Listener.waiting`); others wait in the kernel's backlog. */
  get waiting(): boolean {
    return this.#held.length > 0;
  }

  setAccepting(accepting: boolean): void {
    this.#accepting = accepting;
    if (accepting && this.#onConnection) this.#pump();
  }

  #pump(): void {
    while (this.#held.length > 0 && this.#accepting && !this.#closed) {
      this.#handOut(this.#held.shift()!);
    }
    // Paused too, until one is held (see #acceptLoop).
    const wanted = this.#accepting || this.#held.length === 0;
    if (wanted && !this.#loop && !this.#closed && this.#retryTimer === undefined) {
      this.#loop = this.#acceptLoop();
    }
  }

  #handOut(conn: Conn): void {
    let socket: DenoSocket;
    try {
      socket = new DenoSocket(conn, this.#recvBytes, this.#unixFile ? this.addr : undefined);
    } catch {
      // No memory for its read buffer: this client is turned away, and the
      // accept loop (whose rejection would end the process) goes on.
      try {
        conn.close();
      } catch { /* gone already */ }
      return;
    }
    this.#onConnection!(socket);
  }

  async #acceptLoop(): Promise<void> {
    // While paused one more is accepted and held: so its owner learns that
    // a connection waits (see `start`); the others wait in the backlog.
    while (!this.#closed && (this.#accepting || this.#held.length === 0)) {
      let conn: Conn;
      try {
        conn = await this.#listener.accept();
      } catch (e) {
        if (this.#closed || e instanceof Deno.errors.BadResource) break;
        // A client that reset while waiting in the backlog (Deno reports
        // NotConnected, ConnectionReset or ConnectionAborted) is gone: accept
        // the next one at once, or any client can stall accepting. Only when
        // out of descriptors (or failing again and again) wait a little.
        if (!isResourceError(e) && ++this.#failures < 100) continue;
        this.#failures = 0;
        this.#retryTimer = setTimeout(() => {
          this.#retryTimer = undefined;
          this.#pump();
        }, 50);
        break;
      }
      this.#failures = 0;
      if (this.#closed) {
        conn.close();
        break;
      }
      if (this.#accepting) this.#handOut(conn);
      else {
        this.#held.push(conn);
        if (this.#onWaiting) queueMicrotask(this.#onWaiting);
      }
    }
    this.#loop = null;
  }

  close(): Promise<void> {
    if (!this.#closed) {
      this.#closed = true;
      if (this.#retryTimer !== undefined) clearTimeout(this.#retryTimer);
      this.#retryTimer = undefined;
      for (const conn of this.#held) {
        try {
          conn.close();
        } catch { /* already gone */ }
      }
      this.#held = [];
      try {
        this.#listener.close();
      } catch { /* already closed */ }
      this.#unixFile?.remove();
      this.#unixFile = undefined;
    }
    // Deno lets the port go only once the pending accept() has failed, a
    // turn later: until then binding it again fails with "address in use".
    return this.#loop ?? Promise.resolve();
  }
}

/** True when Deno's unstable `net` APIs are enabled (needed for reusePort). */
export function denoUnstableNetEnabled(): boolean {
  // `Deno.listenDatagram` only exists with --unstable-net (or deno.json
  // "unstable": ["net"]), the same switch reusePort checks.
  return "listenDatagram" in Deno;
}

/**
 * The Deno runtime. `backlog` is ignored: `Deno.listen` has no backlog
 * option (Deno uses its own default).
 */
export const denoRuntime: Runtime = {
  name: "deno",
  async listen(spec: ListenSpec): Promise<Listener> {
    const recvBytes = spec.recvBytes ?? DEFAULT_RECV_BYTES;
    if (spec.transport === "unix") {
      const file = await unixSocketFile(spec.path);
      let listener: Deno.Listener;
      try {
        listener = Deno.listen({ transport: "unix", path: file.bindPath });
      } catch (e) {
        throw bindError(spec, e);
      }
      try {
        file.install(spec.perms);
      } catch (e) {
        listener.close();
        file.remove();
        throw bindError(spec, e);
      }
      return new DenoListener(listener, recvBytes, file);
    }
    if (spec.reusePort && !denoUnstableNetEnabled()) {
      // Without the flag Deno exits the process (code 70) instead of throwing.
      throw new Error(
        `cannot listen on ${formatAddr(spec)}: reusePort needs Deno's unstable "net" ` +
          `feature: run with --unstable-net or add "unstable": ["net"] to deno.json`,
      );
    }
    try {
      const listener = Deno.listen({
        transport: "tcp",
        hostname: spec.hostname,
        port: spec.port,
        ...(spec.reusePort ? { reusePort: true } : {}),
      });
      return new DenoListener(listener, recvBytes, undefined);
    } catch (e) {
      throw bindError(spec, e);
    }
  },
};
