/**
 * The logger interface, the default console logger, and a helper that emits
 * a warning only once per logger (waitress warns once about options it
 * ignores; repeating that on every request or every server would be noise).
 * @module
 */

/** Where the server writes its log lines. `console` satisfies it. */
export interface Logger {
  /** Informational messages (e.g. `total open connections dropped below the connection limit`). */
  info(...args: unknown[]): void;
  /** Something is wrong but the server keeps going (e.g. a malformed proxy header). */
  warn(...args: unknown[]): void;
  /** An error (e.g. an exception thrown by the app). */
  error(...args: unknown[]): void;
}

/**
 * The default logger: the runtime's console (info to stdout, warn/error to
 * stderr), errors written as their stack text so that every runtime logs
 * them alike (Bun's console would print lines of the source around them).
 */
export const consoleLogger: Logger = {
  info: (...args: unknown[]): void => console.info(...args.map(asText)),
  warn: (...args: unknown[]): void => console.warn(...args.map(asText)),
  error: (...args: unknown[]): void => console.error(...args.map(asText)),
};

type Level = "info" | "warn" | "error";

const guarded = new WeakMap<Logger, Logger>();

/**
 * `logger` made safe to call from anywhere in the server: a call that throws
 * (or returns a promise that rejects) must not take down the connection, the
 * timeout sweep or the process, so what it was given goes to the console
 * instead, the first failure with it. The same logger always gives the same
 * guarded one (`warnOnce` counts per logger).
 */
export function guardLogger(logger: Logger): Logger {
  if (logger === consoleLogger) return logger;
  let safe = guarded.get(logger);
  if (safe !== undefined) return safe;
  let failed = false;
  const fallBack = (level: Level, args: unknown[], error: unknown): void => {
    try {
      if (!failed) {
        failed = true;
        consoleLogger.error(
          `The logger's ${level}() failed; logging to the console instead:`,
          error,
        );
      }
      consoleLogger[level](...args);
    } catch {
      // Nowhere left to write to.
    }
  };
  const call = (level: Level, args: unknown[]): void => {
    try {
      const result: unknown = logger[level](...args);
      if (typeof (result as PromiseLike<unknown> | undefined)?.then === "function") {
        (result as PromiseLike<unknown>).then(undefined, (error) => fallBack(level, args, error));
      }
    } catch (error) {
      fallBack(level, args, error);
    }
  };
  safe = {
    info: (...args: unknown[]): void => call("info", args),
    warn: (...args: unknown[]): void => call("warn", args),
    error: (...args: unknown[]): void => call("error", args),
  };
  guarded.set(logger, safe);
  return safe;
}

/** An Error as its stack (or `name: message`), with its causes; anything else as it is. */
export function asText(value: unknown): unknown {
  if (!(value instanceof Error)) return value;
  let text = "";
  let error: unknown = value;
  // A cause chain is short; the bound only guards against a cycle.
  for (let depth = 0; error instanceof Error && depth < 8; depth++) {
    const stack = typeof error.stack === "string" && error.stack !== ""
      ? error.stack
      : `${error.name}: ${error.message}`;
    text += depth === 0 ? stack : "\nCaused by " + stack;
    error = error.cause;
  }
  if (error !== undefined && !(error instanceof Error)) text += "\nCaused by " + String(error);
  return text;
}

// Keyed by logger object so that a test passing its own logger sees its own
// warnings, while the shared console logger warns once per process.
const warned = new WeakMap<Logger, Set<string>>();

/**
 * Logs `message` as a warning through `logger` unless a warning with the same
 * `key` was already logged through that logger. Returns true when it logged.
 */
export function warnOnce(logger: Logger, key: string, message: string): boolean {
  let keys = warned.get(logger);
  if (keys === undefined) {
    keys = new Set();
    warned.set(logger, keys);
  }
  if (keys.has(key)) return false;
  keys.add(key);
  logger.warn(message);
  return true;
}
