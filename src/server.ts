/**
 * createServer/serve: binds the listeners, accepts connections within
 * `connectionLimit`, runs the maintenance timer, and closes gracefully.
 * @module
 */
import { type Adjustments, type Options, resolveOptions } from "./adjustments.ts";
import { Channel, type ChannelOwner } from "./channel.ts";
import { now } from "./clock.ts";
import { SlotList } from "./connections.ts";
import { ParserPool } from "./parser.ts";
import { TaskRunner } from "./runner.ts";
import { detectRuntime } from "./runtime/mod.ts";
import type { Addr, Listener, Socket } from "./runtime/types.ts";
import type { Handler } from "./task.ts";

/** The least time between two connection-limit warnings (ms). */
const LIMIT_LOG_MS = 10_000;

/** A fetch handler, or an object with one (`export default { fetch }`). */
export type App = Handler | { fetch: Handler };

/** A running (or starting) server. */
export interface Server {
  /** Resolves when every listener is bound (then `addr`/`addrs` are set). */
  readonly ready: Promise<void>;
  /** The first listener's address; the real port when bound to port 0. */
  readonly addr: Addr;
  /** Every listener's address. */
  readonly addrs: Addr[];
  /** Accepts connections; resolves when the server is closed. */
  run(): Promise<void>;
  /**
   * Stops accepting, lets in-flight requests finish (up to `timeout` ms,
   * default unlimited; a timeout that is not a number >= 0 throws a
   * RangeError), closes idle connections, then closes everything left.
   */
  close(options?: { timeout?: number }): Promise<void>;
  /**
   * Resolves once the server and all its connections are closed; rejects
   * with `ready`'s error when a listener could not be bound (so that
   * `await serve(app).finished` does not pass a server that never served
   * for one that closed).
   */
  readonly finished: Promise<void>;
}

class HttpServer implements Server, ChannelOwner {
  readonly adj: Adjustments;
  readonly runner: TaskRunner;
  readonly handler: Handler;
  readonly parsers: ParserPool;
  readonly ready: Promise<void>;
  readonly finished: Promise<void>;

  #listeners: Listener[] = [];
  #channels = new SlotList<Channel>();
  #accepting = true;
  #running = false;
  #closing: Promise<void> | null = null;
  #maintenance: ReturnType<typeof setInterval> | undefined;
  #resolveFinished!: () => void;
  #rejectFinished!: (error: unknown) => void;
  #limitWarned = false;
  /** Said that connections were refused, since the limit was last left. */
  #refusedWarned = false;
  #limitLoggedAt = -Infinity;
  /** See `ChannelOwner.roomWanted`. */
  roomWanted = false;
  /** Runs `#makeRoom` again once the connection idle the longest is idle long enough. */
  #roomTimer: ReturnType<typeof setTimeout> | undefined;

  constructor(app: App, options?: Options) {
    this.handler = toHandler(app);
    this.adj = resolveOptions(options);
    this.runner = new TaskRunner(this.adj.maxConcurrency, this.adj.logger);
    this.parsers = new ParserPool(this.adj);
    this.finished = new Promise((resolve, reject) => {
      this.#resolveFinished = resolve;
      this.#rejectFinished = reject;
    });
    // The caller learns of a failed bind through ready, run() or finished:
    // none of them left unawaited may end the process.
    this.finished.catch(() => {});
    this.ready = this.#bind();
    this.ready.catch(() => {});
    const signal = this.adj.signal;
    if (signal) {
      if (signal.aborted) this.ready.then(() => this.close(), () => {});
      else {
        const onAbort = () => this.close();
        signal.addEventListener("abort", onAbort, { once: true });
        // A signal that outlives the server must not keep it alive.
        const forget = () => signal.removeEventListener("abort", onAbort);
        this.finished.then(forget, forget);
      }
    }
  }

  async #bind(): Promise<void> {
    const runtime = await detectRuntime();
    try {
      for (const spec of this.adj.listen) {
        const listener = await runtime.listen({ ...spec, recvBytes: this.adj.recvBytes });
        this.#listeners.push(listener);
      }
      // Only once every address is bound: a caller that prints "Serving on"
      // (the CLI) must not announce a listener that a later failure closes.
      for (const listener of this.#listeners) this.adj.onListen?.(listener.addr);
    } catch (error) {
      await Promise.all(this.#listeners.map((l) => l.close().catch(() => {})));
      this.#listeners = [];
      this.#rejectFinished(error);
      throw error;
    }
  }

  get addr(): Addr {
    const first = this.#listeners[0];
    if (!first) throw new Error("the server is not bound yet: await server.ready first");
    return first.addr;
  }

  get addrs(): Addr[] {
    return this.#listeners.map((l) => l.addr);
  }

  async run(): Promise<void> {
    await this.ready;
    if (this.#running || this.#closing) return this.finished;
    this.#running = true;
    this.#listeners.forEach((listener, i) => {
      const spec = this.adj.listen[i];
      const ipv6Only = spec.transport === "tcp" && spec.ipv6Only === true;
      listener.start(
        (socket) => {
          if (ipv6Only && isMappedIPv4(socket.remoteAddr)) socket.destroy();
          else this.#accept(socket);
        },
        () => this.#makeRoom(),
        (held) => this.#refused(held),
      );
    });
    const interval = Math.max(0.01, Math.min(this.adj.cleanupInterval, this.adj.channelTimeout));
    this.#maintenance = setInterval(
      () => this.#maintain(),
      Math.min(interval * 1000, MAX_TIMER_MS),
    );
    return this.finished;
  }

  #accept(socket: Socket): void {
    if (this.#closing) {
      socket.destroy();
      return;
    }
    const channel = new Channel(this, socket);
    this.#channels.add(channel);
    this.#applyLimit();
    channel.start();
    // Full again, with more waiting: each may need an idle connection closed
    // (later: a close can hand out the next held socket at once, and so on).
    if (!this.#accepting) queueMicrotask(() => this.#makeRoom());
  }

  channelIdle(): void {
    this.#makeRoom();
  }

  /**
   * Connections wait at `connectionLimit`: the connection idle the longest
   * between requests, once idle for `IDLE_BEFORE_CLOSE_MS`, is closed to
   * make room (clients expect a kept-alive connection to be closed, and open
   * another). Else a proxy's pool of idle connections, or clients that keep
   * theirs open, would lock new clients out until `channelTimeout`. With
   * none idle, the next connection to become idle is (see `roomWanted`).
   */
  #makeRoom(): void {
    this.roomWanted = false;
    if (this.#accepting || this.#closing || !this.#listeners.some((l) => l.waiting)) return;
    let oldest: Channel | null = null;
    this.#channels.forEach((channel) => {
      if (channel.idle && (oldest === null || channel.lastActivity < oldest.lastActivity)) {
        oldest = channel;
      }
    });
    if (oldest === null) {
      this.roomWanted = true;
      return;
    }
    const wait = (oldest as Channel).lastActivity + IDLE_BEFORE_CLOSE_MS - now();
    if (wait <= 0) (oldest as Channel).closeIdle();
    else {
      this.#roomTimer ??= setTimeout(() => {
        this.#roomTimer = undefined;
        this.#makeRoom();
      }, wait);
    }
  }

  channelClosed(channel: Channel): void {
    this.#channels.delete(channel);
    this.#applyLimit();
    if (this.#closing && this.#channels.size === 0) this.#allClosed();
  }

  #applyLimit(): void {
    const full = this.#channels.size >= this.adj.connectionLimit;
    if (full === !this.#accepting || this.#closing) return;
    this.#accepting = !full;
    for (const listener of this.#listeners) listener.setAccepting(this.#accepting);
    // Resuming may hand out held sockets at once, and one may fill the limit
    // again (which a nested call then said): nothing more to say here.
    if (this.#accepting === full) return;
    // Under a flood the count flaps around the limit: say so once, then at
    // most every LIMIT_LOG_MS, and say "again" only after a warning.
    const time = Date.now();
    if (full && !this.#limitWarned && time - this.#limitLoggedAt >= LIMIT_LOG_MS) {
      this.#limitWarned = true;
      this.#limitLoggedAt = time;
      this.adj.logger.warn(
        `total open connections reached the connection limit, no longer accepting new connections`,
      );
    } else if (!full && this.#limitWarned) {
      this.#refusedWarned = false;
      this.#limitWarned = false;
      this.adj.logger.info(
        `total open connections dropped below the connection limit, listening again`,
      );
    }
  }

  /** Bun and Node: a connection closed at once, the limit reached and `backlog` held already. */
  #refused(held: number): void {
    if (this.#refusedWarned) return;
    this.#refusedWarned = true;
    this.adj.logger.warn(
      `the connection limit is reached and ${held} more connections wait: ` +
        `closing new connections at once (see connectionLimit and backlog)`,
    );
  }

  #maintain(): void {
    const time = Date.now();
    this.#channels.forEach((channel) => channel.checkTimeouts(time));
  }

  close(options?: { timeout?: number }): Promise<void> {
    const timeout = options?.timeout;
    if (timeout !== undefined && (typeof timeout !== "number" || !(timeout >= 0))) {
      throw new RangeError(
        `close()'s timeout must be a number of milliseconds >= 0 (Infinity: no limit), got ${
          typeof timeout === "string" ? JSON.stringify(timeout) : String(timeout)
        }`,
      );
    }
    if (this.#closing) return this.#closing;
    this.#closing = (async () => {
      await this.ready.catch(() => {});
      await Promise.all(this.#listeners.map((l) => l.close().catch(() => {})));
      this.#channels.forEach((channel) => channel.shutdown());
      if (this.#channels.size === 0) this.#allClosed();
      // Longer than a timer can wait is as good as no limit.
      if (timeout !== undefined && timeout <= MAX_TIMER_MS) {
        const timer = setTimeout(() => {
          this.adj.logger.warn(
            `closing gracefully took longer than ${timeout} ms: cutting ${this.#channels.size} ` +
              `connection${this.#channels.size === 1 ? "" : "s"} still open`,
          );
          this.#channels.forEach((channel) => channel.destroy());
        }, timeout);
        await this.finished.catch(() => {});
        clearTimeout(timer);
      } else {
        await this.finished.catch(() => {});
      }
    })();
    return this.#closing;
  }

  #allClosed(): void {
    clearInterval(this.#maintenance);
    clearTimeout(this.#roomTimer);
    this.#resolveFinished();
  }
}

/**
 * How long a connection must have been idle before it is closed to make
 * room (ms): a proxy reuses the connections of its pool at once, and one
 * closed just then loses the request being sent on it (nginx retries only
 * those it may repeat: a POST is the client's 502).
 */
export const IDLE_BEFORE_CLOSE_MS = 1000;

/** The longest delay timers take (2^31 - 1 ms, ~24.8 days): a longer one fires at once. */
const MAX_TIMER_MS = 2 ** 31 - 1;

/** An IPv4 peer on a dual-stack socket ("::ffff:a.b.c.d"). */
function isMappedIPv4(addr: Addr): boolean {
  return addr.transport === "tcp" && addr.hostname !== undefined &&
    addr.hostname.toLowerCase().startsWith("::ffff:") && addr.hostname.includes(".");
}

function toHandler(app: App): Handler {
  // A class is a function too, but calling it without `new` throws: only
  // its static fetch method can serve.
  const isClass = typeof app === "function" &&
    CLASS_SOURCE.test(Function.prototype.toString.call(app));
  if (typeof app === "function" && !isClass) return app;
  const fetch = (app as { fetch?: unknown } | null)?.fetch;
  if (typeof fetch === "function") {
    const target = app as { fetch: Handler };
    return (request, info) => target.fetch(request, info);
  }
  throw new TypeError(
    `app must be a fetch handler function or an object with a fetch method, got ${
      app === null ? "null" : isClass ? "a class without a static fetch method" : typeof app
    }`,
  );
}

/** How a class's source text begins. */
const CLASS_SOURCE = /^class\b/;

/** Validates the options and starts binding every listener; call `run()` to accept. */
export function createServer(app: App, options?: Options): Server {
  return new HttpServer(app, options);
}

/** `createServer(app, options)` and `run()`: binds and serves. */
export function serve(app: App, options?: Options): Server {
  const server = createServer(app, options);
  server.run().catch((error) => {
    const adj = (server as HttpServer).adj;
    adj.logger.error(`cannot serve: ${error instanceof Error ? error.message : error}`);
  });
  return server;
}
