/**
 * Loads the app: resolves `module[:name]` against the current directory,
 * imports it, picks the export, and with `--call` calls the factory.
 * @module
 */
import type { App } from "./core.ts";
import { CliError } from "./args.ts";
import { fileUrl, isFile, resolvePath } from "./platform.ts";

/** `module[:name]` split in two; `name` is undefined for the default export. */
export interface AppSpec {
  /** Path or URL of the module, as given. */
  module: string;
  /** Export name, possibly dotted (`routes.api`); undefined = the default export. */
  name: string | undefined;
}

const EXPORT_PATH = /^[A-Za-z_$][\w$]*(?:\.[A-Za-z_$][\w$]*)*$/;

/**
 * Splits `app.ts:handler`. The part after the last `:` is an export name
 * only if it looks like one, so `jsr:@scope/pkg`, `https://host/app.ts` and
 * `C:\app.ts` stay whole.
 */
export function splitAppSpec(spec: string): AppSpec {
  const colon = spec.lastIndexOf(":");
  if (colon > 1) {
    const name = spec.slice(colon + 1);
    if (EXPORT_PATH.test(name)) return { module: spec.slice(0, colon), name };
  }
  return { module: spec, name: undefined };
}

/** True for a specifier with a URL scheme (`file:`, `https:`, `jsr:`, `npm:` ...), not a drive letter. */
function hasScheme(module: string): boolean {
  return /^[a-zA-Z][a-zA-Z0-9+.-]+:/.test(module);
}

/** The URL schemes a module is imported from. */
const KNOWN_SCHEME = /^(?:https?|file|data|npm|jsr|node):/i;

/**
 * The import specifier for `module`: URLs as they are, paths resolved against
 * `cwd`. Throws `CliError` when a path names no file, or names one followed by
 * `:` and something that is not an export name.
 */
export function moduleSpecifier(module: string, cwd: string): string {
  // `app.ts:1abc` is a file and a name that is none (splitAppSpec left it
  // whole); not so a URL, nor a file whose own name has the colon.
  const colon = module.lastIndexOf(":");
  if (
    colon > 1 && !KNOWN_SCHEME.test(module) && !isFile(resolvePath(cwd, module)) &&
    isFile(resolvePath(cwd, module.slice(0, colon)))
  ) {
    throw new CliError(
      `invalid export name ${JSON.stringify(module.slice(colon + 1))} in ${module} ` +
        "(a name is an identifier, or identifiers joined by dots)",
    );
  }
  if (hasScheme(module)) return module;
  const path = resolvePath(cwd, module);
  if (!isFile(path)) throw new CliError(`module not found: ${module} (looked for ${path})`);
  return fileUrl(path);
}

function describe(value: unknown): string {
  if (value === null) return "null";
  if (Array.isArray(value)) return "an array";
  if (isClass(value)) return "a class without a static fetch method (export an instance)";
  return typeof value === "object" ? "an object without a fetch method" : `a ${typeof value}`;
}

/** A class is a function that cannot be called without `new`. */
function isClass(value: unknown): boolean {
  return typeof value === "function" && /^class\b/.test(Function.prototype.toString.call(value));
}

function isApp(value: unknown): value is App {
  if (typeof value === "function" && !isClass(value)) return true;
  return value !== null && (typeof value === "object" || typeof value === "function") &&
    typeof (value as { fetch?: unknown }).fetch === "function";
}

/** A stack line's place, `file:line:column`, with or without a function name before it. */
const LOCATION = /^\s*at (?:async )?(?:[^(\n]*\()?(\S+:\d+:\d+)\)?\s*$/gm;

/** This directory: a stack frame in it is the CLI's own, not the app's. */
const CLI_DIR = new URL(".", import.meta.url).pathname;

/** Where Bun's build messages put a syntax error. */
interface Position {
  file?: unknown;
  line?: unknown;
  column?: unknown;
}

/**
 * Why an import failed, on one line, with where when the error says: Bun
 * gives a syntax error a `position` (several, in `errors`), Deno puts it in
 * the message, and an error thrown while loading has it in its stack (the
 * first frame outside the CLI: a module not found has only the CLI's).
 * Before 1.4, Bun throws a lone syntax error as a BuildMessage that is not
 * an `Error`; before 2.8, Deno ends the message's first line with
 * "at file:line:column" rather than giving it a line of its own.
 */
function importFailure(error: unknown): string {
  if (!(error instanceof Error) && !isBuildMessage(error)) return String(error);
  let message = error.message.split("\n")[0];
  let where = firstPlace(error.message);
  const inline = INLINE_LOCATION.exec(message);
  if (where === undefined && inline !== null) {
    where = inline[1];
    message = message.slice(0, inline.index);
  }
  const errors = (error as { errors?: unknown }).errors;
  let built = error as { position?: Position | null };
  if (Array.isArray(errors) && errors.length > 0) {
    built = errors[0];
    message = String((errors[0] as { message?: unknown }).message) +
      (errors.length > 1 ? ` (and ${errors.length - 1} more)` : "");
  }
  const at = built.position;
  if (at && typeof at.file === "string") where = `${at.file}:${at.line}:${at.column}`;
  where ??= firstPlace(error.stack ?? "");
  return where === undefined ? message : `${message} (at ${where})`;
}

/** Bun's syntax error before 1.4: not an `Error`, but with a message (and a `position`). */
function isBuildMessage(error: unknown): error is Error {
  return typeof error === "object" && error !== null &&
    typeof (error as { message?: unknown }).message === "string" &&
    typeof (error as { position?: unknown }).position === "object";
}

/** Deno's syntax error before 2.8: the place ends the message's first line. */
const INLINE_LOCATION = / at (file:\S+:\d+:\d+)$/;

/** The first `file:line:column` of a stack line in `text` that is not in the CLI. */
function firstPlace(text: string): string | undefined {
  for (const match of text.matchAll(LOCATION)) {
    if (!match[1].includes(CLI_DIR)) return match[1];
  }
  return undefined;
}

/** Imports the module and returns the app it names. Throws `CliError` with one clear line on failure. */
export async function loadApp(spec: string, options: { call: boolean; cwd: string }): Promise<App> {
  const { module, name } = splitAppSpec(spec);
  const specifier = moduleSpecifier(module, options.cwd);
  let namespace: Record<string, unknown>;
  try {
    namespace = await import(specifier);
  } catch (error) {
    throw new CliError(`cannot load ${module}: ${importFailure(error)}`);
  }
  const label = name === undefined ? "default export" : `export "${name}"`;
  let value: unknown = namespace;
  for (const part of name === undefined ? ["default"] : name.split(".")) {
    const holder = value as Record<string, unknown> | null | undefined;
    value = holder !== null && (typeof holder === "object" || typeof holder === "function")
      ? holder[part]
      : undefined;
    if (value === undefined) {
      const names = Object.keys(namespace);
      const available = names.length === 0
        ? "it exports nothing"
        : `it exports: ${names.join(", ")}`;
      const hint = name === undefined ? `; name one with ${module}:NAME` : "";
      throw new CliError(`${module} has no ${label} (${available})${hint}`);
    }
  }
  if (options.call) {
    if (typeof value !== "function") {
      throw new CliError(
        `--call: the ${label} of ${module} is not callable (it is ${
          isApp(value) ? "an app object already: leave out --call" : describe(value)
        })`,
      );
    }
    // A factory takes nothing; a handler (request, info) called so fails or answers.
    const handlerHint = (value as () => unknown).length > 0
      ? " (it takes arguments: a handler? leave out --call)"
      : "";
    try {
      value = await (value as () => unknown)();
    } catch (error) {
      const message = error instanceof Error ? error.message : String(error);
      throw new CliError(`--call: the ${label} of ${module} threw: ${message}${handlerHint}`);
    }
    if (!isApp(value)) {
      const hint = value instanceof Response ? " (a Response: a handler? leave out --call)" : "";
      throw new CliError(
        `--call: the ${label} of ${module} returned ${describe(value)}${hint}, ` +
          "not a fetch handler or an object with a fetch method",
      );
    }
    return value;
  }
  if (!isApp(value)) {
    throw new CliError(
      `the ${label} of ${module} is ${describe(value)}, ` +
        "not a fetch handler or an object with a fetch method",
    );
  }
  return value;
}
