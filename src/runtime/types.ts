/**
 * The one socket interface the sans-IO core drives. Each runtime adapter
 * (`deno.ts`, `bun.ts`, `node.ts`) implements it and hides that runtime's
 * quirks: partial writes, half-close, resets, pause/resume.
 * @module
 */

/** A bound or connected address. */
export interface Addr {
  /** `"tcp"` for IPv4/IPv6, `"unix"` for a unix domain socket. */
  transport: "tcp" | "unix";
  /** IP address (no brackets for IPv6); absent for unix sockets. */
  hostname?: string;
  /** TCP port; absent for unix sockets. */
  port?: number;
  /** Socket file path for unix sockets (may be empty for an unnamed peer). */
  path?: string;
}

/** Callbacks a socket delivers to its owner (the channel). */
export interface SocketHandler {
  /**
   * Bytes arrived. The array is owned by the receiver from then on (adapters
   * hand over a fresh buffer or a view nobody else reuses).
   */
  onData(chunk: Uint8Array): void;
  /** The peer half-closed its sending side (FIN). The socket stays writable. */
  onEnd(): void;
  /** Every queued byte has been handed to the kernel (`pendingBytes` is 0). */
  onDrain(): void;
  /** Some queued bytes were handed to the kernel, and more wait: the peer reads. */
  onSent(): void;
  /**
   * The socket is closed, for whatever reason; called exactly once. `error`
   * is set when an I/O error ended it; a peer that reset or went away (a
   * client leaving) is a plain close.
   */
  onClose(error?: Error): void;
}

/** One accepted connection. */
export interface Socket {
  /** The peer's address. */
  readonly remoteAddr: Addr;
  /** The local address the connection arrived on. */
  readonly localAddr: Addr;
  /** Bytes queued by `write` and not yet accepted by the kernel. */
  readonly pendingBytes: number;
  /** True once closed (by either side); writes are then ignored. */
  readonly closed: boolean;
  /**
   * Attaches the owner's callbacks and starts reading. Called once, right
   * after the connection is handed out.
   */
  start(handler: SocketHandler): void;
  /**
   * Queues bytes for sending, in order. Never drops bytes and never throws:
   * a failure closes the socket and is reported through `onClose`. The caller
   * must not modify `data` afterwards.
   */
  write(data: Uint8Array): void;
  /** Stops delivering `onData` (the kernel then pushes back on the peer). */
  pause(): void;
  /** Resumes delivering `onData`. */
  resume(): void;
  /**
   * Graceful close: send everything queued, half-close (FIN), then read and
   * discard the peer's bytes for up to `lingerMs` (so a pipelining client
   * never loses a response to a TCP reset), then close.
   */
  end(lingerMs?: number): void;
  /**
   * Closes at once, discarding queued output. With `reset`, by a TCP reset
   * where the runtime can send one (Bun, Node; Deno closes as usual): the
   * client then knows that what it got is not the whole response.
   */
  destroy(reset?: boolean): void;
}

/** Where and how to listen. */
export type ListenSpec =
  | {
    transport: "tcp";
    /** IP address to bind (`"0.0.0.0"`, `"::"`, `"127.0.0.1"`, `"::1"` ...). */
    hostname: string;
    /** Port; 0 picks a free one (reported in `Listener.addr`). */
    port: number;
    /** Share the port with other listeners (SO_REUSEPORT). */
    reusePort?: boolean;
    /**
     * Refuse IPv4 peers on `"::"`: Node binds it IPv6-only; on Deno and Bun,
     * which cannot, the server closes each IPv4-mapped peer it accepts.
     */
    ipv6Only?: boolean;
    /** listen() backlog (ignored on Deno, which has no such option). */
    backlog?: number;
    /** Bytes asked for per read, on Deno (default 65536); Bun and Node size their own reads. */
    recvBytes?: number;
  }
  | {
    transport: "unix";
    /** Socket file path; a socket file already there is replaced (see `UnixSocketFile`). */
    path: string;
    /** chmod applied after binding (e.g. 0o600). */
    perms?: number;
    /** listen() backlog (ignored on Deno, which has no such option). */
    backlog?: number;
    /** Bytes asked for per read, on Deno (default 65536); Bun and Node size their own reads. */
    recvBytes?: number;
  };

/** A bound listening socket. */
export interface Listener {
  /** The bound address (the real port when bound to port 0). */
  readonly addr: Addr;
  /**
   * Starts handing accepted connections to `onConnection`. While paused (see
   * `setAccepting`) new connections wait (in the kernel backlog, or accepted
   * but unread, depending on the runtime) and are handed out on resume;
   * `onWaiting` is told (in a later microtask) of each that the listener
   * holds, so that its owner may make room, and `onRefused` of each it
   * closes at once because it already holds `held` (its backlog) of them.
   */
  start(
    onConnection: (socket: Socket) => void,
    onWaiting?: () => void,
    onRefused?: (held: number) => void,
  ): void;
  /** Connections are held, to be handed out on resume (see `start`). */
  readonly waiting: boolean;
  /** Pauses or resumes accepting (used for `connectionLimit`). */
  setAccepting(accepting: boolean): void;
  /**
   * Stops listening (removes a unix socket file). Connections already handed
   * out are not touched. Resolves when the listener is closed.
   */
  close(): Promise<void>;
}

/** What a runtime adapter provides. */
export interface Runtime {
  /** `"deno"`, `"bun"` or `"node"`. */
  readonly name: string;
  /**
   * Binds a listener. Rejects with an `Error` whose message names the
   * address (e.g. `"cannot listen on 127.0.0.1:8080: address in use"`).
   */
  listen(spec: ListenSpec): Promise<Listener>;
}
