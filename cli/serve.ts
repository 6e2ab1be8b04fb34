/**
 * Serving in this process: load the app, bind, print where, stop gracefully
 * on SIGINT/SIGTERM (a second signal exits at once).
 * @module
 */
import { type Addr, createServer, type Options, type Server } from "./core.ts";
import { CliError } from "./args.ts";
import { loadApp } from "./app.ts";
import { err, exit, onStopSignal, out, signalExitCode } from "./platform.ts";

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
  let server: Server;
  try {
    const app = await loadApp(spec, { call, cwd });
    server = createServer(app, {
      ...options,
      onListen: (addr) => out(`Serving on ${listenUrl(addr)}`),
    });
    await server.ready;
  } catch (error) {
    if (!(error instanceof CliError)) err(`Error: ${oneLine(error)}`);
    else err(`Error: ${error.message}`);
    return 1;
  }
  let stopping = false;
  onStopSignal((signal) => {
    if (stopping) exit(signalExitCode(signal));
    stopping = true;
    err(`${signal}: closing gracefully (send it again to exit at once)`);
    server.close(closeOptions(gracefulTimeout)).catch((error) =>
      err(`Error while closing: ${oneLine(error)}`)
    );
  });
  await server.run();
  return 0;
}
