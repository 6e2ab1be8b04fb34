/**
 * One `--threads` worker: an isolate that loads the app and serves it on
 * the shared port (SO_REUSEPORT). Driven by messages from `workers.ts`.
 * @module
 */
import { createServer, type Server } from "./core.ts";
import { loadApp } from "./app.ts";
import { cliLogger, closeOptions, logStrayErrors, oneLine } from "./serve.ts";
import type { ToParent, ToWorker } from "./workers.ts";

interface WorkerScope {
  onmessage: ((event: MessageEvent<ToWorker>) => void) | null;
  postMessage(message: ToParent): void;
}

const scope = globalThis as unknown as WorkerScope;

/**
 * Deno tells the parent nothing when a worker ends by `Deno.exit` (which
 * `process.exit` calls there too): it says so first, so that it is replaced
 * at once, and a shutdown does not wait for it, rather than only once it
 * has not answered pings for `--worker-timeout`. (Bun reports it itself.)
 */
function reportExit(): void {
  const deno = (globalThis as { Deno?: { exit(code?: number): never } }).Deno;
  if (deno === undefined) return;
  const exit = deno.exit;
  try {
    deno.exit = (code?: number): never => {
      scope.postMessage({ type: "exiting" });
      return exit(code);
    };
  } catch {
    // Not replaceable on this version: the pings still notice.
  }
}
reportExit();
logStrayErrors();
let server: Server | undefined;
/** The close asked for, with its options (see `--graceful-timeout`), or null. */
let closeRequested: { timeout?: number } | null = null;

async function start(message: Extract<ToWorker, { type: "start" }>): Promise<void> {
  try {
    const app = await loadApp(message.app, { call: message.call, cwd: message.cwd });
    server = createServer(app, { logger: cliLogger, ...message.options, reusePort: true });
    await server.ready;
  } catch (error) {
    scope.postMessage({ type: "failed", message: oneLine(error) });
    return;
  }
  scope.postMessage({ type: "ready", addrs: server.addrs });
  const running = server.run();
  // A close asked for while the app was loading applies now.
  if (closeRequested) server.close(closeRequested);
  await running;
  scope.postMessage({ type: "closed" });
}

scope.onmessage = (event) => {
  const message = event.data;
  if (message.type === "start") {
    start(message);
  } else if (message.type === "ping") {
    scope.postMessage({ type: "pong" });
  } else if (message.type === "close") {
    closeRequested = closeOptions(message.gracefulTimeout);
    server?.close(closeRequested);
  }
};
