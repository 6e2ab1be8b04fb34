/**
 * `--threads N` / `--workers N`: N isolates (Web Workers) serve the same
 * app on one port through SO_REUSEPORT, so the kernel spreads connections
 * over cores. The first worker binds (and reports the real port when port 0
 * was asked for); the others bind exactly what it bound. A worker that dies
 * is replaced; SIGINT/SIGTERM close every worker gracefully.
 * @module
 */
import type { Addr, Options } from "./core.ts";
import { CliError } from "./args.ts";
import { err, exit, onStopSignal, out, reusePortAvailable, signalExitCode } from "./platform.ts";
import { listenEntry, listenUrl, serveHere } from "./serve.ts";

/** Messages from the parent to a worker. */
export type ToWorker =
  | { type: "start"; app: string; call: boolean; cwd: string; options: Options }
  | { type: "close" };

/** Messages from a worker to the parent. */
export type ToParent =
  | { type: "ready"; addrs: Addr[] }
  | { type: "failed"; message: string }
  | { type: "closed" };

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
  #dead = false;

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
      if (message.type === "ready") resolveReady(message.addrs);
      else if (message.type === "failed") {
        rejectReady(new CliError(message.message));
        resolveClosed(); // nothing to close: a shutdown need not wait for it
      } else if (message.type === "closed") resolveClosed();
    };
    const died = (why: string) => {
      if (this.#dead) return;
      this.#dead = true;
      rejectReady(new CliError(`worker ${id} died while starting: ${why}`));
      resolveClosed();
      onDeath(this, why);
    };
    // An uncaught error ends the worker (Deno and Bun); preventDefault keeps
    // it from also ending this process.
    this.worker.addEventListener("error", (event: Event) => {
      event.preventDefault();
      died(errorSummary(event as ErrorEvent));
    });
    // Bun also reports a worker that ended for another reason (process.exit in it).
    this.worker.addEventListener("close", () => died("exited"));
    this.worker.postMessage({ type: "start", ...launch } satisfies ToWorker);
  }

  /** Stops the worker for good (after a graceful close, or when it already died). */
  terminate(): void {
    this.#dead = true;
    this.worker.terminate();
  }
}

/** Runs `threads` workers until a signal; returns the exit code. */
export async function runWorkers(
  threads: number,
  app: string,
  call: boolean,
  options: Options,
  listenSpecs: Array<{ transport: string }>,
  cwd: string,
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
    return serveHere(app, call, options, cwd);
  }

  let shuttingDown = false;
  let nextId = 1;
  let failures = 0;
  const live = new Set<WorkerHandle>();
  let shared: Launch = { app, call, cwd, options: { ...options, reusePort: true } };

  const onDeath = (handle: WorkerHandle, why: string): void => {
    live.delete(handle);
    handle.terminate();
    if (shuttingDown) return;
    const young = Date.now() - handle.startedAt < MIN_LIFETIME_MS;
    failures = young ? failures + 1 : 0;
    const delay = young ? Math.min(MAX_BACKOFF_MS, 250 * 2 ** Math.min(failures, 5)) : 0;
    err(`worker ${handle.id} died (${why}); restarting${delay ? ` in ${delay} ms` : ""}`);
    setTimeout(() => {
      if (!shuttingDown) launch().catch(() => {}); // a failed start is another death
    }, delay);
  };

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

  // The first worker binds what was asked for; the rest bind what it got
  // (the real port, when port 0 was asked for).
  const first = new WorkerHandle(nextId++, shared, onDeath);
  live.add(first);
  let addrs: Addr[];
  try {
    addrs = await first.ready;
  } catch (error) {
    shuttingDown = true;
    first.terminate();
    err(`Error: ${(error as Error).message}`);
    return 1;
  }
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
    shuttingDown = true;
    for (const handle of live) handle.terminate();
    err(`Error: ${(error as Error).message}`);
    return 1;
  }
  for (const addr of addrs) out(`Serving on ${listenUrl(addr)}`);
  err(`${threads} workers sharing the port`);

  return await new Promise<number>((resolve) => {
    onStopSignal((signal) => {
      if (shuttingDown) exit(signalExitCode(signal));
      shuttingDown = true;
      err(`${signal}: closing ${live.size} workers gracefully (send it again to exit at once)`);
      const handles = [...live];
      for (const handle of handles) handle.worker.postMessage({ type: "close" } satisfies ToWorker);
      Promise.all(handles.map((handle) => handle.closed)).then(() => {
        for (const handle of handles) handle.terminate();
        resolve(0);
      });
    });
  });
}
