/**
 * `--threads N` / `--workers N`: N isolates (Web Workers) serve the same
 * app on one port through SO_REUSEPORT, so the kernel spreads connections
 * over cores. The first worker binds (and reports the real port when port 0
 * was asked for); the others bind exactly what it bound. A worker that dies
 * is replaced, and so is one that stops answering the parent's pings for
 * `--worker-timeout` seconds: Deno reports no event for a worker that calls
 * `Deno.exit`, and an isolate stuck in a loop reports nothing either (it
 * would keep its share of the port's connections and never close).
 * SIGINT/SIGTERM close every worker gracefully.
 * @module
 */
import type { Addr, Options } from "./core.ts";
import { CliError } from "./args.ts";
import {
  err,
  exit,
  onStopSignal,
  out,
  reusePortAvailable,
  signalExitCode,
  terminateStopsStuckWorkers,
} from "./platform.ts";
import { listenEntry, listenUrl, serveHere } from "./serve.ts";

/** Messages from the parent to a worker. */
export type ToWorker =
  | { type: "start"; app: string; call: boolean; cwd: string; options: Options }
  | { type: "close"; gracefulTimeout: number }
  | { type: "ping" };

/** Messages from a worker to the parent. */
export type ToParent =
  | { type: "ready"; addrs: Addr[] }
  | { type: "failed"; message: string }
  | { type: "closed" }
  | { type: "exiting" }
  | { type: "pong" };

/** How to start a worker. */
interface Launch {
  app: string;
  call: boolean;
  cwd: string;
  options: Options;
}

/** Restart backoff: a worker that dies young waits before its replacement starts. */
const MIN_LIFETIME_MS = 1000;
const MAX_BACKOFF_MS = 5000;
/**
 * How long past `--graceful-timeout` a shutdown waits for a worker to
 * report its server closed before stopping it (one blocked, or gone).
 */
const CLOSE_MARGIN_MS = 5000;
/** How often the parent pings its workers, at most. */
const PING_MS = 1000;

/**
 * One line about a worker's uncaught error. Deno's message is
 * "Uncaught Error: ..."; Bun's is a source excerpt with an "error: ..." line.
 */
function errorSummary(event: ErrorEvent): string {
  if (event.error instanceof Error) return `${event.error.name}: ${event.error.message}`;
  const lines = String(event.message ?? "").split("\n").map((line) => line.trim());
  return lines.find((line) => /^(uncaught\s+)?[\w.]*error\b.*:/i.test(line)) ??
    lines.find((line) => line !== "") ??
    "uncaught error";
}

/** One running worker and the promises that report on it. */
class WorkerHandle {
  readonly worker: Worker;
  readonly startedAt = Date.now();
  /** Resolves with the bound addresses, rejects with the start failure. */
  readonly ready: Promise<Addr[]>;
  /** Resolves when the worker reports its server closed. */
  readonly closed: Promise<void>;
  /** It reported its server ready. */
  serving = false;
  /** When the ping it has not answered yet was sent (`performance.now()`), or null. */
  #pingedAt: number | null = null;
  #dead = false;
  #died: (why: string) => void;

  constructor(
    readonly id: number,
    launch: Launch,
    onDeath: (handle: WorkerHandle, why: string) => void,
  ) {
    this.worker = new Worker(new URL("./worker.ts", import.meta.url).href, { type: "module" });
    let resolveReady!: (addrs: Addr[]) => void;
    let rejectReady!: (error: Error) => void;
    let resolveClosed!: () => void;
    this.ready = new Promise((resolve, reject) => {
      resolveReady = resolve;
      rejectReady = reject;
    });
    this.ready.catch(() => {});
    this.closed = new Promise((resolve) => (resolveClosed = resolve));
    this.worker.onmessage = (event: MessageEvent<ToParent>) => {
      const message = event.data;
      this.#pingedAt = null; // any message shows its event loop running
      if (message.type === "ready") {
        this.serving = true;
        resolveReady(message.addrs);
      } else if (message.type === "failed") {
        rejectReady(new CliError(message.message));
        resolveClosed(); // nothing to close: a shutdown need not wait for it
      } else if (message.type === "closed") resolveClosed();
      else if (message.type === "exiting") died("exited");
    };
    const died = this.#died = (why: string) => {
      if (this.#dead) return;
      this.#dead = true;
      rejectReady(new CliError(`worker ${id} died while starting: ${why}`));
      resolveClosed();
      onDeath(this, why);
    };
    // An error that ends the worker (its script failing to load; the app's
    // own stray errors are logged in it, see logStrayErrors); preventDefault
    // keeps it from also ending this process.
    this.worker.addEventListener("error", (event: Event) => {
      event.preventDefault();
      died(errorSummary(event as ErrorEvent));
    });
    // Bun also reports a worker that ended for another reason (process.exit in
    // it); Deno does not, so there the worker says so itself ("exiting").
    this.worker.addEventListener("close", () => died("exited"));
    this.worker.postMessage({ type: "start", ...launch } satisfies ToWorker);
  }

  /**
   * Pings the worker (one ping at a time: a stuck one gets no queue of
   * them); one that has not answered for longer than `limitMs` is taken for
   * dead (its `closed` resolves, and the parent replaces it). A worker
   * loading its app answers too, unless the app blocks it.
   */
  check(now: number, limitMs: number): void {
    if (this.#dead) return;
    if (this.#pingedAt === null) {
      this.#pingedAt = now;
      this.worker.postMessage({ type: "ping" } satisfies ToWorker);
    } else if (now - this.#pingedAt > limitMs) {
      this.#died(
        `no answer for ${limitMs / 1000} s: it exited, or its event loop is blocked` +
          // Replaced, but not removed: only a restart frees its share of the port.
          (terminateStopsStuckWorkers()
            ? ""
            : "; a blocked one goes on holding its share of the port on this runtime"),
      );
    }
  }

  /** Forgets the ping out: this process itself stood still, not the worker. */
  forgetPing(): void {
    this.#pingedAt = null;
  }

  /** Takes the worker for dead at once (one still loading when a shutdown begins). */
  stop(why: string): void {
    this.#died(why);
  }

  /** Stops the worker for good (after a graceful close, or when it already died). */
  terminate(): void {
    this.#dead = true;
    this.worker.terminate();
  }
}

/** The CLI's `--worker-timeout` and `--graceful-timeout`, in seconds (0: none). */
export interface WorkerTimeouts {
  workerTimeout: number;
  gracefulTimeout: number;
}

/**
 * Runs `threads` workers until a signal; returns the exit code. A worker
 * silent for `workerTimeout` seconds is replaced; a graceful close drops
 * what is still in flight after `gracefulTimeout` seconds.
 */
export async function runWorkers(
  threads: number,
  app: string,
  call: boolean,
  options: Options,
  listenSpecs: Array<{ transport: string }>,
  cwd: string,
  { workerTimeout, gracefulTimeout }: WorkerTimeouts,
): Promise<number> {
  if (listenSpecs.some((spec) => spec.transport === "unix")) {
    err("Error: --threads > 1 needs TCP listeners: several workers cannot share a unix socket");
    return 1;
  }
  if (!reusePortAvailable()) {
    err(
      `Warning: --threads ${threads} needs SO_REUSEPORT, which Deno allows only with its unstable ` +
        '"net" feature: run deno with --unstable-net (e.g. deno run -A --unstable-net ' +
        'jsr:@waitress/cli --threads 4 app.ts) or add "unstable": ["net"] to deno.json. ' +
        "Serving with one thread.",
    );
    return serveHere(app, call, options, cwd, gracefulTimeout);
  }

  let shuttingDown = false;
  /** Every first worker is serving: from now on a dead one is replaced. */
  let started = false;
  let nextId = 1;
  let failures = 0;
  const live = new Set<WorkerHandle>();
  let shared: Launch = { app, call, cwd, options: { ...options, reusePort: true } };

  const onDeath = (handle: WorkerHandle, why: string): void => {
    live.delete(handle);
    handle.terminate();
    // A first worker that fails to start ends the start-up, which says why.
    if (shuttingDown || (!started && !handle.serving)) return;
    const young = Date.now() - handle.startedAt < MIN_LIFETIME_MS;
    failures = young ? failures + 1 : 0;
    const delay = young ? Math.min(MAX_BACKOFF_MS, 250 * 2 ** Math.min(failures, 5)) : 0;
    err(`worker ${handle.id} died (${why}); restarting${delay ? ` in ${delay} ms` : ""}`);
    setTimeout(() => {
      if (!shuttingDown) launch().catch(() => {}); // a failed start is another death
    }, delay);
  };

  // Every worker is pinged from its start (one loading its app answers
  // too), also during a graceful close: a stuck worker never reports closed.
  const limitMs = workerTimeout * 1000;
  const every = Math.min(PING_MS, limitMs / 2);
  let lastTick = performance.now();
  const pings = limitMs > 0
    ? setInterval(() => {
      const now = performance.now();
      // This process stood still (stopped, or its machine paused): the
      // workers are not to blame for pings it did not read.
      const stalled = now - lastTick > every + limitMs / 2;
      lastTick = now;
      for (const handle of live) {
        if (stalled) handle.forgetPing();
        else handle.check(now, limitMs);
      }
    }, every)
    : undefined;

  const launch = async (): Promise<Addr[]> => {
    const handle = new WorkerHandle(nextId++, shared, onDeath);
    live.add(handle);
    try {
      return await handle.ready;
    } catch (error) {
      if (live.has(handle)) onDeath(handle, (error as Error).message);
      throw error;
    }
  };

  // From the start: a signal while workers are still starting stops them too
  // (one already serving finishes its requests), and ends the start-up.
  let resolveDone!: (code: number) => void;
  const done = new Promise<number>((resolve) => (resolveDone = resolve));
  onStopSignal((signal) => {
    if (shuttingDown) exit(signalExitCode(signal));
    shuttingDown = true;
    const workers = `${live.size} worker${live.size === 1 ? "" : "s"}`;
    err(`${signal}: closing ${workers} gracefully (send it again to exit at once)`);
    const handles = [...live];
    const close: ToWorker = { type: "close", gracefulTimeout };
    for (const handle of handles) {
      // One still loading its app holds no connection: stopped at once.
      if (handle.serving) handle.worker.postMessage(close);
      else handle.stop("stopped while loading the app");
    }
    const finish = () => {
      clearInterval(pings);
      clearTimeout(deadline);
      for (const handle of handles) handle.terminate();
      resolveDone(0);
    };
    // Past the graceful timeout, a worker that has not closed is stopped
    // (with --worker-timeout 0 nothing else would notice one gone).
    const deadline = gracefulTimeout > 0
      ? setTimeout(() => {
        err(`workers still open ${gracefulTimeout} s after ${signal}: stopping them`);
        finish();
      }, gracefulTimeout * 1000 + CLOSE_MARGIN_MS)
      : undefined;
    Promise.all(handles.map((handle) => handle.closed)).then(finish);
  });

  // The first worker binds what was asked for; the rest bind what it got
  // (the real port, when port 0 was asked for).
  const first = new WorkerHandle(nextId++, shared, onDeath);
  live.add(first);
  let addrs: Addr[];
  try {
    addrs = await first.ready;
  } catch (error) {
    if (shuttingDown) return await done;
    shuttingDown = true;
    clearInterval(pings);
    first.terminate();
    err(`Error: ${(error as Error).message}`);
    return 1;
  }
  if (shuttingDown) return await done;
  const { host: _h, port: _p, listen: _l, unixSocket: _u, ...rest } = options;
  shared = {
    app,
    call,
    cwd,
    options: { ...rest, reusePort: true, listen: addrs.map(listenEntry) },
  };
  const others: WorkerHandle[] = [];
  for (let i = 1; i < threads; i++) {
    const handle = new WorkerHandle(nextId++, shared, onDeath);
    live.add(handle);
    others.push(handle);
  }
  try {
    await Promise.all(others.map((handle) => handle.ready));
  } catch (error) {
    if (shuttingDown) return await done;
    shuttingDown = true;
    clearInterval(pings);
    for (const handle of live) handle.terminate();
    err(`Error: ${(error as Error).message}`);
    return 1;
  }
  if (shuttingDown) return await done;
  started = true;
  for (const addr of addrs) out(`Serving on ${listenUrl(addr)}`);
  err(`${threads} workers sharing the port`);

  return await done;
}
