/**
 * Everything the CLI needs from the runtime, in one place: arguments, the
 * working directory, output, exit, signals, file checks. `node:` modules
 * give one API that behaves the same on Deno and Bun.
 * @module
 */
import process from "node:process";
import { existsSync, statSync } from "node:fs";
import { isAbsolute, resolve } from "node:path";
import { pathToFileURL } from "node:url";

/** The command-line arguments after the script name. */
export function args(): string[] {
  return process.argv.slice(2);
}

/** The current working directory. */
export function cwd(): string {
  return process.cwd();
}

// A closed pipe or a full disk behind stdout or stderr is no reason to stop
// serving: write errors are dropped (Deno threw them at the first line).
process.stdout.on("error", () => {});
process.stderr.on("error", () => {});

/** Writes one line to standard output. */
export function out(line: string): void {
  writeLine(process.stdout, line);
}

/** Writes one line to standard error. */
export function err(line: string): void {
  writeLine(process.stderr, line);
}

function writeLine(stream: NodeJS.WritableStream, line: string): void {
  try {
    stream.write(line + "\n", () => {});
  } catch {
    // Not writable (see above).
  }
}

/** Ends the process with `code`. */
export function exit(code: number): never {
  process.exit(code);
}

/** The signals that ask the server to stop. */
export type StopSignal = "SIGINT" | "SIGTERM";

/**
 * How long after a stop signal another one is taken for a copy of it (ms).
 * One stop often arrives twice: Ctrl-C signals the terminal's whole process
 * group, so `npm start` both gets it and passes it on; GNU `timeout` and
 * `tini -g` signal the child and its group. Read as a second signal, that
 * copy would drop the requests in flight.
 */
export const REPEAT_WINDOW_MS = 1000;

/**
 * Calls `handler` on every SIGINT or SIGTERM, but for one that comes within
 * `REPEAT_WINDOW_MS` of the last (said on stderr, and otherwise ignored).
 */
export function onStopSignal(handler: (signal: StopSignal) => void): void {
  let last = -Infinity;
  const on = (signal: StopSignal) => {
    const at = performance.now();
    if (at - last < REPEAT_WINDOW_MS) {
      err(
        `${signal} within a second of the last stop signal: taken for the same stop ` +
          "(send one after a second to exit at once)",
      );
      return;
    }
    last = at;
    handler(signal);
  };
  process.on("SIGINT", () => on("SIGINT"));
  process.on("SIGTERM", () => on("SIGTERM"));
}

/**
 * Calls `handler` with every error that nothing caught: thrown from a timer
 * or a callback, or a promise rejected with no handler. By default Deno and
 * Bun end the process (or the worker) there; a server that ends drops every
 * connection it holds, the other clients' requests too.
 */
export function onStrayError(handler: (error: unknown) => void): void {
  process.on("uncaughtException", handler);
  process.on("unhandledRejection", handler);
}

/** The conventional exit code of a process ended by `signal` (128 + its number). */
export function signalExitCode(signal: StopSignal): number {
  return signal === "SIGINT" ? 130 : 143;
}

/** A path resolved against `base` (absolute paths stay as they are). */
export function resolvePath(base: string, path: string): string {
  return isAbsolute(path) ? path : resolve(base, path);
}

/** The `file:` URL of an absolute path. */
export function fileUrl(path: string): string {
  return pathToFileURL(path).href;
}

/** True when `path` exists and is a regular file. */
export function isFile(path: string): boolean {
  try {
    return existsSync(path) && statSync(path).isFile();
  } catch {
    return false;
  }
}

/** `"deno"`, `"bun"` or `"node"`. */
export function runtimeName(): "deno" | "bun" | "node" {
  // deno-lint-ignore no-explicit-any
  const g = globalThis as any;
  if (typeof g.Deno?.version?.deno === "string") return "deno";
  if (typeof g.Bun?.version === "string") return "bun";
  return "node";
}

/**
 * Whether `Worker.terminate()` stops an isolate stuck in a loop: Bun's does;
 * Deno's (2.9) does not, and the isolate runs on with its listeners.
 */
export function terminateStopsStuckWorkers(): boolean {
  return runtimeName() !== "deno";
}

/**
 * Whether SO_REUSEPORT listeners can be opened. Deno needs its unstable
 * `net` feature and exits the process (not catchable) without it; its
 * `listenDatagram` API exists exactly when that feature is on.
 */
export function reusePortAvailable(): boolean {
  // deno-lint-ignore no-explicit-any
  const g = globalThis as any;
  if (runtimeName() === "deno") return typeof g.Deno.listenDatagram === "function";
  return true;
}
