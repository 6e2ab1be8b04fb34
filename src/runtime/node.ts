/**
 * node:net adapter, used when neither Deno nor Bun is present. node:net
 * buffers every write itself, so the queue here only coalesces the writes of
 * one turn; `pendingBytes` includes node's own buffer.
 * @module
 */

import { createServer, type Server, type Socket as NetSocket } from "node:net";
import process from "node:process";
// Imported, not the global: Deno before 2.8 has no global `setImmediate` in
// its types (and before 2.5 none at run time), and it type-checks this file.
import { setImmediate } from "node:timers";
import type { Addr, Listener, ListenSpec, Runtime } from "./types.ts";
import { BaseSocket } from "./base_socket.ts";
import { GatedListener } from "./listener_gate.ts";
import { bindError, formatAddr } from "./messages.ts";
import { OutputQueue } from "./output_queue.ts";
import { RUNTIME } from "./which.ts";
import { type UnixSocketFile, unixSocketFile } from "./unix_socket.ts";

/** Queued output this large is sent at the end of the turn (see `write`). */
const FLUSH_AT_ONCE = 256 * 1024;

/**
 * At most this much is handed to node at once (a larger buffer in pieces):
 * node reports a write, or a gathered batch of them, done only when all of
 * it is, and a client that reads slowly must be seen to make progress
 * (`onSent`) well within `channelTimeout`.
 */
const IN_FLIGHT_LIMIT = 1024 * 1024;

/** One accepted node:net connection. */
class NodeSocket extends BaseSocket {
  readonly remoteAddr: Addr;
  readonly localAddr: Addr;
  #sock: NetSocket;
  #out = new OutputQueue();
  /** A flush is queued for the end of the event loop's iteration. */
  #later = false;
  /** A flush is queued for the end of this turn. */
  #soon = false;
  /** Bytes handed to node whose write callback has not run yet. */
  #inFlight = 0;
  /** The size of each of those writes, in order (node calls back in order). */
  #sizes: number[] = [];

  constructor(sock: NetSocket, listenAddr: Addr) {
    super();
    this.#sock = sock;
    if (listenAddr.transport === "unix") {
      this.remoteAddr = Object.freeze({ transport: "unix", path: "" });
      this.localAddr = listenAddr;
    } else {
      this.remoteAddr = Object.freeze({
        transport: "tcp",
        hostname: sock.remoteAddress,
        port: sock.remotePort,
      });
      this.localAddr = Object.freeze({
        transport: "tcp",
        hostname: sock.localAddress,
        port: sock.localPort,
      });
      sock.setNoDelay(true);
    }
    // Explicitly paused, or adding the "data" listener would start reading
    // before start() (pauseOnConnect alone does not prevent that).
    sock.pause();
    // A Buffer of its own per read, passed on as it is: body bytes become
    // plain Uint8Arrays when they reach the app (Task), as on Bun.
    sock.on("data", (chunk: Uint8Array) => this._data(chunk));
    sock.on("end", () => this._end());
    // node emits "error" then "close"; the error is remembered for onClose.
    let error: Error | undefined;
    sock.on("error", (e: Error) => {
      error = e;
    });
    sock.on("close", () => {
      this._close(error);
      this.onGone?.(this);
    });
  }

  get pendingBytes(): number {
    return this.#out.bytes + (this.isClosed ? 0 : this.#sock.writableLength);
  }

  write(data: Uint8Array): void {
    if (this.isClosed || this.isLingering || data.byteLength === 0) return;
    this.#out.push(data);
    // As on Bun (see bun.ts), output waits for the end of the event loop's
    // iteration, so that the responses to one poll's requests leave together
    // (on Node 20: hello world 110 -> 68 µs of CPU a request, 64 KiB 185 ->
    // 110 µs); past FLUSH_AT_ONCE it leaves at the end of this turn, so that
    // a stream is not read far ahead.
    if (this.#out.bytes >= FLUSH_AT_ONCE) {
      if (!this.#soon) {
        this.#soon = true;
        queueMicrotask(this.#startFlush);
      }
    } else if (!this.#later && !this.#soon) {
      this.#later = true;
      setImmediate(this.#startFlush);
    }
  }

  /** Bound once, so scheduling a flush allocates no closure. */
  #startFlush = (): void => {
    this.#flush();
  };

  /**
   * Sends what is queued, up to `IN_FLIGHT_LIMIT` in node's hands (a flush
   * still scheduled then finds nothing; the write callbacks send the rest).
   */
  #flush(): void {
    this.#soon = false;
    this.#later = false;
    const sock = this.#sock;
    // Corked, the writes of one flush (a head and the large body after it)
    // leave in one gathered send (writev) instead of one send each.
    const gather = this.#out.length > 1;
    if (gather) sock.cork();
    while (!this.isClosed && this.#inFlight < IN_FLIGHT_LIMIT) {
      let chunk = this.#out.take();
      if (chunk === undefined) break;
      if (chunk.byteLength > IN_FLIGHT_LIMIT) {
        this.#out.unshift(chunk.subarray(IN_FLIGHT_LIMIT));
        chunk = chunk.subarray(0, IN_FLIGHT_LIMIT);
      }
      this.#inFlight += chunk.byteLength;
      this.#sizes.push(chunk.byteLength);
      sock.write(chunk, this.#afterWrite);
    }
    if (gather) sock.uncork();
  }

  /** node wrote one of our chunks to the kernel. */
  #afterWrite = (error?: Error | null): void => {
    this.#inFlight -= this.#sizes.shift()!;
    if (error || this.isClosed) return; // "error"/"close" report it.
    // Counted, not read off writableLength: Deno's node:net reports 0 before
    // every callback of a batch has run.
    if (this.#inFlight === 0 && this.#out.bytes === 0 && !this.#soon && !this.#later) {
      return this._flushed();
    }
    this._sent();
    if (this.#out.bytes > 0 && !this.#soon && !this.#later) this.#flush();
  };

  protected rawPause(): void {
    this.#sock.pause();
  }

  protected rawResume(): void {
    this.#sock.resume();
  }

  protected rawHalfClose(): void {
    this.#sock.end();
  }

  protected rawClose(reset: boolean): void {
    this.#out.clear();
    if (reset) this.#sock.resetAndDestroy();
    else this.#sock.destroy();
  }
}

/** A bound node:net listener (node cannot stop accepting: see `GatedListener`). */
class NodeListener extends GatedListener {
  readonly addr: Addr;
  #server: Server;
  #unixFile: UnixSocketFile | undefined;

  constructor(
    server: Server,
    addr: Addr,
    backlog: number | undefined,
    unixFile: UnixSocketFile | undefined,
  ) {
    super(backlog);
    this.#server = server;
    this.#unixFile = unixFile;
    this.addr = addr;
    server.on("connection", (sock: NetSocket) => {
      // Sockets arrive paused (pauseOnConnect) and stay so until start().
      this.offer(new NodeSocket(sock, this.addr));
    });
  }

  close(): Promise<void> {
    this.closeGate();
    // server.close()'s callback waits for every connection to end; the
    // listening handle itself (and a unix socket file) goes away now.
    if (this.#server.listening) this.#server.close();
    this.#unixFile?.remove();
    this.#unixFile = undefined;
    return Promise.resolve();
  }
}

/**
 * Whether `listen` honours `reusePort`: Node 22.12 and 23.1 added it; Deno's
 * and Bun's node:net have it.
 */
function nodeHasReusePort(): boolean {
  if (RUNTIME !== "node") return true;
  const [major, minor] = process.versions.node.split(".").map(Number);
  return major > 22 || (major === 22 && minor >= 12);
}

/** The node:net runtime (also works on Deno and Bun). */
export const nodeRuntime: Runtime = {
  name: "node",
  async listen(spec: ListenSpec): Promise<Listener> {
    if (spec.transport === "tcp" && spec.reusePort && !nodeHasReusePort()) {
      // Older Node ignores the option, and the second listener would fail
      // with a misleading "address already in use".
      throw new Error(
        `cannot listen on ${formatAddr(spec)}: reusePort needs Node 22.12 or later ` +
          `(this is Node ${process.versions.node})`,
      );
    }
    const unixFile = spec.transport === "unix" ? await unixSocketFile(spec.path) : undefined;
    return new Promise((resolve, reject) => {
      const server = createServer({ allowHalfOpen: true, pauseOnConnect: true });
      const onError = (e: Error): void => {
        server.close();
        reject(bindError(spec, unixFile ? unixFile.bindFailure(e) : e));
      };
      server.once("error", onError);
      server.once("listening", () => {
        server.off("error", onError);
        // Later server errors (e.g. EMFILE on accept) are retried by node.
        server.on("error", () => {});
        let addr: Addr;
        if (spec.transport === "unix") {
          addr = Object.freeze({ transport: "unix", path: spec.path });
          try {
            unixFile!.install(spec.perms);
          } catch (e) {
            server.close();
            unixFile!.remove();
            reject(bindError(spec, e));
            return;
          }
        } else {
          const a = server.address();
          addr = typeof a === "object" && a !== null
            ? { transport: "tcp", hostname: a.address, port: a.port }
            : { transport: "tcp", hostname: spec.hostname, port: spec.port };
        }
        resolve(new NodeListener(server, addr, spec.backlog, unixFile));
      });
      if (spec.transport === "unix") {
        server.listen({ path: unixFile!.bindPath, backlog: spec.backlog });
      } else {
        server.listen({
          host: spec.hostname,
          port: spec.port,
          backlog: spec.backlog,
          ipv6Only: spec.ipv6Only === true ||
            (spec.hostname.includes(":") && spec.hostname !== "::"),
          ...(spec.reusePort ? { reusePort: true } : {}),
        });
      }
    });
  },
};
