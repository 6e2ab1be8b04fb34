/**
 * Serving in this process: load the app, bind, print where, stop gracefully
 * on SIGINT/SIGTERM (a second signal exits at once).
 * @module
 */
import {
  type Addr,
  type App,
  createServer,
  type Logger,
  type Options,
  type Server,
} from "./core.ts";
import { CliError, flagify, flagifyOptionLine } from "./args.ts";
import { resolveOptions } from "./options.ts";
import { loadApp } from "./app.ts";
import { err, exit, onStopSignal, onStrayError, out, signalExitCode } from "./platform.ts";

/** waitress's `Serving on http://HOST:PORT` (IPv6 in brackets; unix sockets as `unix:PATH`). */
export function listenUrl(addr: Addr): string {
  if (addr.transport === "unix") return `unix:${addr.path ?? ""}`;
  const host = addr.hostname ?? "";
  return `http://${host.includes(":") ? `[${host}]` : host}:${addr.port}`;
}

/** A `listen` entry that binds exactly `addr` again (used to share a port-0 listener). */
export function listenEntry(addr: Addr): string {
  if (addr.transport === "unix") return `unix:${addr.path ?? ""}`;
  const host = addr.hostname ?? "";
  return `${host.includes(":") ? `[${host}]` : host}:${addr.port}`;
}

/** The server's default log, for `cliLogger`. */
const serverLog = resolveOptions({}).logger;

/**
 * The server's log on the command line: its warnings about options name the
 * flags that set them (`--send-bytes is a waitress tuning option …`).
 */
export const cliLogger: Logger = {
  info: (...args: unknown[]) => serverLog.info(...args),
  warn: (...args: unknown[]) =>
    serverLog.warn(
      ...(typeof args[0] === "string" ? [flagifyOptionLine(args[0]), ...args.slice(1)] : args),
    ),
  error: (...args: unknown[]) => serverLog.error(...args),
};

/**
 * Logs an error that nothing caught (see `onStrayError`) and lets the server
 * go on, on every runtime, as waitress does with an error in a thread.
 */
export function logStrayErrors(): void {
  onStrayError((error) =>
    cliLogger.error("Uncaught error outside any response (the server goes on):", error)
  );
}

/** The message of an error, first line only (errors are reported on one line). */
export function oneLine(error: unknown): string {
  const message = error instanceof Error ? error.message : String(error);
  return message.split("\n")[0].trim();
}

/** `close()`'s options for `--graceful-timeout` seconds (0: no limit). */
export function closeOptions(gracefulTimeout: number): { timeout?: number } {
  return gracefulTimeout > 0 ? { timeout: gracefulTimeout * 1000 } : {};
}

/**
 * Loads the app and serves it here until a signal; returns the exit code.
 * A graceful close drops what is still in flight after `gracefulTimeout` s.
 */
export async function serveHere(
  spec: string,
  call: boolean,
  options: Options,
  cwd: string,
  gracefulTimeout: number,
): Promise<number> {
  logStrayErrors();
  let server: Server | undefined;
  let stopping = false;
  // From the start: a signal while the app loads or the server binds ends
  // the start-up (nothing is served yet) instead of killing the process.
  onStopSignal((signal) => {
    if (stopping) exit(signalExitCode(signal));
    stopping = true;
    err(`${signal}: closing gracefully (send it again to exit at once)`);
    if (server === undefined) exit(0);
    server.close(closeOptions(gracefulTimeout)).catch((error) =>
      err(`Error while closing: ${oneLine(error)}`)
    );
  });
  let app: App;
  try {
    app = await loadApp(spec, { call, cwd });
  } catch (error) {
    err(`Error: ${error instanceof CliError ? error.message : oneLine(error)}`);
    return 1;
  }
  try {
    server = createServer(app, {
      logger: cliLogger,
      ...options,
      onListen: (addr) => out(`Serving on ${listenUrl(addr)}`),
    });
    await server.ready;
  } catch (error) {
    // A bind error may name an option (reusePort): as its flag here.
    err(`Error: ${flagify(oneLine(error))}`);
    return 1;
  }
  await server.run();
  return 0;
}
