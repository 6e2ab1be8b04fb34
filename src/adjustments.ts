/**
 * Options: waitress's adjustments in camelCase, their defaults, one
 * validation pass (`resolveOptions`) and parsing from strings
 * (`optionsFromStrings`, used by the CLI and environment configuration).
 *
 * Runs once per server, never per request, so clarity wins over speed here.
 * @module
 */
import type { Addr, ListenSpec } from "./runtime/types.ts";
import { consoleLogger, guardLogger, type Logger, warnOnce } from "./logger.ts";
import { canonicalIPv6 } from "./ipv6.ts";
import {
  DEFAULT_MAX_REQUEST_HEADERS,
  isAuthority,
  isIPv4Address,
  isIPv6Address,
} from "./parser.ts";

export type { Logger } from "./logger.ts";
export type { ListenSpec } from "./runtime/types.ts";

/**
 * The request handler's error hook: turns an exception thrown by the app into
 * a response, or returns nothing (`undefined`) to decline: the client then
 * gets the default 500 page.
 */
export type ErrorHook = (
  error: unknown,
  request: Request,
) => Response | void | Promise<Response | void>;

/**
 * What users pass to `createServer`/`serve`: waitress's adjustments in
 * camelCase (same meaning and defaults, see {@link DEFAULTS}) plus the
 * runtime conventions `signal`, `onListen`, `onError` and `logger`.
 */
export interface Options {
  /** Address to bind (default `"0.0.0.0"`); `"*"` binds all addresses (dual-stack `"::"`, or `"0.0.0.0"` with `ipv6: false`), `"localhost"` the loopbacks. Not combinable with `listen`/`unixSocket`. */
  host?: string;
  /** TCP port (default 8080; 0 picks a free one). Not combinable with `listen`/`unixSocket`. */
  port?: number;
  /** Listeners: `"HOST:PORT"`, `"[::1]:PORT"`, `"HOST"` (port 8080), `"*:PORT"` (all addresses), `"unix:/path"`; space- or comma-separated in one string, or an array. */
  listen?: string | string[];
  /** Path of a unix domain socket to listen on (instead of TCP). */
  unixSocket?: string;
  /** chmod applied to unix sockets after binding (default 0o600); a string is read as octal. */
  unixSocketPerms?: number | string;
  /** Allow IPv4 addresses when expanding `*` and `localhost` (default true). */
  ipv4?: boolean;
  /** Allow IPv6 addresses when expanding `*` and `localhost` (default true). */
  ipv6?: boolean;
  /** listen() backlog (default 1024). */
  backlog?: number;
  /** Share the port with other processes (SO_REUSEPORT), as the CLI's `--threads` workers do (default false). */
  reusePort?: boolean;
  /** The request scheme when no trusted proxy says otherwise (default `"http"`). */
  urlScheme?: "http" | "https";
  /** Mount point of the app: becomes `info.scriptName` and is removed from `info.pathInfo` (default `""`). */
  urlPrefix?: string;
  /** Value of the `Server` response header; `""` sends none (default `"waitress"`). */
  ident?: string;
  /** Server name reported to the app (default `"waitress.invalid"`). */
  serverName?: string;
  /** Most app calls in flight at once; the rest wait in order (default `Infinity`: no cap). */
  maxConcurrency?: number;
  /** Most open connections (default 100); beyond it new ones wait, and the connection idle the longest between requests (for a second at least) is closed to let one in. */
  connectionLimit?: number;
  /** Seconds between sweeps for idle connections (default 30), at most `channelTimeout`. */
  cleanupInterval?: number;
  /** Seconds of inactivity after which an idle connection is closed (default 120). */
  channelTimeout?: number;
  /** Log socket errors: I/O errors other than a client resetting or leaving (default true). */
  logSocketErrors?: boolean;
  /** Largest request line plus header block in bytes; larger gets 431 (default 262144). */
  maxRequestHeaderSize?: number;
  /**
   * Most header field lines in a request; more gets 431 (default 100, as
   * Apache's LimitRequestFields). Not in waitress: the runtimes' `Headers`
   * cost grows with the square of the number of distinct names.
   */
  maxRequestHeaders?: number;
  /** Largest request body in bytes; larger gets 413 (default 1073741824). */
  maxRequestBodySize?: number;
  /** Put the exception's stack in 500 responses (default false). */
  exposeTracebacks?: boolean;
  /** Bytes asked for per socket read on Deno (default 8192); Bun and Node read with buffers of their own. */
  recvBytes?: number;
  /** Pending output in bytes above which the response body stream is paused (default 16777216). */
  outbufHighWatermark?: number;
  /** Requests read ahead on one connection while one is served; > 0 detects disconnects early (default 0). */
  channelRequestLookahead?: number;
  /** The peer allowed to send proxy headers (an IP address as the socket reports it, `"localhost"` for unix sockets, or `"*"`). */
  trustedProxy?: string;
  /** How many proxies in the chain are trusted (default 1). Needs `trustedProxy`. */
  trustedProxyCount?: number;
  /** Which proxy headers to trust: `x-forwarded-for`, `x-forwarded-host`, `x-forwarded-proto`, `x-forwarded-port`, `x-forwarded-by`, or `forwarded` alone. Needs `trustedProxy`. */
  trustedProxyHeaders?: string | string[];
  /** Remove proxy headers that are not trusted before the app sees them (default true). */
  clearUntrustedProxyHeaders?: boolean;
  /** Log a warning when untrusted proxy headers are removed (default false). */
  logUntrustedProxyHeaders?: boolean;
  /** Accepted and ignored (one warning): one event loop has no worker threads; see `maxConcurrency` and the CLI's `--threads`. */
  threads?: number;
  /** Accepted and ignored (one warning): a waitress tuning knob with no meaning here. */
  sendBytes?: number;
  /** Accepted and ignored (one warning): a waitress tuning knob with no meaning here. */
  asyncoreLoopTimeout?: number;
  /** Accepted and ignored (one warning): a waitress tuning knob with no meaning here. */
  asyncoreUsePoll?: boolean;
  /** Accepted and ignored (one warning): a waitress tuning knob with no meaning here. */
  inbufOverflow?: number;
  /** Accepted and ignored (one warning): a waitress tuning knob with no meaning here. */
  outbufOverflow?: number;
  /** Aborting it closes the server gracefully. */
  signal?: AbortSignal;
  /** Called once per listener with its bound address, once every listener is bound (none if one fails). */
  onListen?: (addr: Addr) => void;
  /** Turns an exception thrown by the app into a response (default, or when it returns nothing: a 500 page). */
  onError?: ErrorHook;
  /** Where log lines go (default: the console). */
  logger?: Logger;
}

/** Options after validation, every field resolved. */
export interface Adjustments {
  /** Every listener to bind, from host/port, listen, unixSocket(+Perms), ipv4/ipv6, backlog and reusePort. */
  listen: ListenSpec[];
  /** Default request scheme. */
  urlScheme: "http" | "https";
  /** `""` or `"/x"` (one leading slash, no trailing slash), as waitress's `slash_fixed_str`. */
  urlPrefix: string;
  /** `Server` header value; `""` means send none. */
  ident: string;
  /** Server name reported to the app. */
  serverName: string;
  /** Most app calls in flight; `Infinity` means no cap. */
  maxConcurrency: number;
  /** Most open connections. */
  connectionLimit: number;
  /** Seconds between idle sweeps. */
  cleanupInterval: number;
  /** Idle seconds before a connection is closed. */
  channelTimeout: number;
  /** Log socket errors. */
  logSocketErrors: boolean;
  /** Header block limit in bytes. */
  maxRequestHeaderSize: number;
  /** Header field line limit. */
  maxRequestHeaders: number;
  /** Body limit in bytes. */
  maxRequestBodySize: number;
  /** Stack traces in 500 bodies. */
  exposeTracebacks: boolean;
  /** Bytes per socket read. */
  recvBytes: number;
  /** Pending output that pauses the body stream. */
  outbufHighWatermark: number;
  /** Requests read ahead per connection. */
  channelRequestLookahead: number;
  /** Peer trusted to send proxy headers, `"*"`, or undefined for none. */
  trustedProxy: string | undefined;
  /** Trusted proxies in the chain. */
  trustedProxyCount: number;
  /** Lower-case names of the trusted proxy headers. */
  trustedProxyHeaders: Set<string>;
  /** Remove untrusted proxy headers. */
  clearUntrustedProxyHeaders: boolean;
  /** Warn when untrusted proxy headers are removed. */
  logUntrustedProxyHeaders: boolean;
  /** Closes the server when aborted. */
  signal: AbortSignal | undefined;
  /** Called per bound listener. */
  onListen: ((addr: Addr) => void) | undefined;
  /** Error hook for app exceptions. */
  onError: ErrorHook | undefined;
  /** Where log lines go. */
  logger: Logger;
}

/** The defaults: waitress's, except `threads` (see `maxConcurrency`). */
export const DEFAULTS: Readonly<
  & {
    host: string;
    port: number;
    ipv4: boolean;
    ipv6: boolean;
    backlog: number;
    reusePort: boolean;
    unixSocketPerms: number;
  }
  & Omit<
    Adjustments,
    "listen" | "trustedProxy" | "trustedProxyHeaders" | "signal" | "onListen" | "onError" | "logger"
  >
> = Object.freeze({
  host: "0.0.0.0",
  port: 8080,
  ipv4: true,
  ipv6: true,
  backlog: 1024,
  reusePort: false,
  unixSocketPerms: 0o600,
  urlScheme: "http",
  urlPrefix: "",
  ident: "waitress",
  serverName: "waitress.invalid",
  maxConcurrency: Infinity,
  connectionLimit: 100,
  cleanupInterval: 30,
  channelTimeout: 120,
  logSocketErrors: true,
  maxRequestHeaderSize: 262144,
  maxRequestHeaders: DEFAULT_MAX_REQUEST_HEADERS,
  maxRequestBodySize: 1073741824,
  exposeTracebacks: false,
  recvBytes: 8192,
  outbufHighWatermark: 16777216,
  channelRequestLookahead: 0,
  trustedProxyCount: 1,
  clearUntrustedProxyHeaders: true,
  logUntrustedProxyHeaders: false,
});

/**
 * How an option's value is written as a string (CLI flag, environment):
 * `int` a non-negative integer, `size` bytes with an optional k/m/g suffix,
 * `seconds` a non-negative number, `bool` true/false/yes/no/1/0/on/off,
 * `octal` permissions, `string` as is, `list` space- or comma-separated,
 * `limit` an integer or `none`/`unlimited`/`inf`. Function-valued options
 * (`signal`, `onListen`, `onError`, `logger`) have no string form.
 */
export type StringKind =
  | "int"
  | "size"
  | "seconds"
  | "bool"
  | "octal"
  | "string"
  | "list"
  | "limit";

/** Every option that can be given as a string, with its string form. Order is the CLI's help order. */
export const STRING_OPTIONS: Readonly<Record<string, StringKind>> = Object.freeze({
  host: "string",
  port: "int",
  listen: "list",
  unixSocket: "string",
  unixSocketPerms: "octal",
  ipv4: "bool",
  ipv6: "bool",
  backlog: "int",
  reusePort: "bool",
  urlScheme: "string",
  urlPrefix: "string",
  ident: "string",
  serverName: "string",
  maxConcurrency: "limit",
  connectionLimit: "int",
  cleanupInterval: "seconds",
  channelTimeout: "seconds",
  logSocketErrors: "bool",
  maxRequestHeaderSize: "size",
  maxRequestHeaders: "int",
  maxRequestBodySize: "size",
  exposeTracebacks: "bool",
  recvBytes: "size",
  outbufHighWatermark: "size",
  channelRequestLookahead: "int",
  trustedProxy: "string",
  trustedProxyCount: "int",
  trustedProxyHeaders: "list",
  clearUntrustedProxyHeaders: "bool",
  logUntrustedProxyHeaders: "bool",
  threads: "int",
  sendBytes: "size",
  asyncoreLoopTimeout: "seconds",
  asyncoreUsePoll: "bool",
  inbufOverflow: "size",
  outbufOverflow: "size",
});

/** waitress options that mean nothing in one JavaScript process: accepted, validated, ignored with one warning. */
export const IGNORED_OPTIONS: readonly string[] = Object.freeze([
  "threads",
  "sendBytes",
  "asyncoreLoopTimeout",
  "asyncoreUsePoll",
  "inbufOverflow",
  "outbufOverflow",
]);

const FUNCTION_OPTIONS = ["signal", "onListen", "onError", "logger"];

/** Every accepted option name (for unknown-option errors and suggestions). */
export const OPTION_NAMES: readonly string[] = Object.freeze([
  ...Object.keys(STRING_OPTIONS),
  ...FUNCTION_OPTIONS,
]);

/** The proxy headers `trustedProxyHeaders` may name. */
export const PROXY_HEADER_NAMES: readonly string[] = Object.freeze([
  "x-forwarded-for",
  "x-forwarded-host",
  "x-forwarded-proto",
  "x-forwarded-port",
  "x-forwarded-by",
  "forwarded",
]);

// ---------------------------------------------------------------------------
// Error helpers

/** Renders a bad value for an error message: strings quoted, others readable. */
function show(value: unknown): string {
  if (typeof value === "string") return JSON.stringify(value);
  if (typeof value === "bigint") return `${value}n`;
  if (typeof value === "function") return "a function";
  if (Array.isArray(value)) {
    try {
      return JSON.stringify(value);
    } catch {
      return "an array";
    }
  }
  if (value !== null && typeof value === "object") {
    try {
      return JSON.stringify(value) ?? "an object";
    } catch {
      return "an object";
    }
  }
  return String(value);
}

function typeError(name: string, what: string, value: unknown): TypeError {
  return new TypeError(`${name} must be ${what}, got ${show(value)}`);
}

function rangeError(name: string, what: string, value: unknown): RangeError {
  return new RangeError(`${name} must be ${what}, got ${show(value)}`);
}

/** Levenshtein distance, for "did you mean" suggestions on unknown names. */
function distance(a: string, b: string): number {
  const row: number[] = [];
  for (let j = 0; j <= b.length; j++) row.push(j);
  for (let i = 1; i <= a.length; i++) {
    let diag = row[0];
    row[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const above = row[j];
      row[j] = Math.min(
        row[j] + 1,
        row[j - 1] + 1,
        diag + (a[i - 1] === b[j - 1] ? 0 : 1),
      );
      diag = above;
    }
  }
  return row[b.length];
}

/**
 * The candidate closest to `name` (case-insensitive edit distance), or
 * undefined when nothing is close enough to be a plausible typo: more edits
 * than one per `lettersPerTypo` characters of `name`, and more than two.
 */
export function closest(
  name: string,
  candidates: readonly string[],
  lettersPerTypo = 3,
): string | undefined {
  const lower = name.toLowerCase();
  let best: string | undefined;
  let bestDistance = Infinity;
  for (const candidate of candidates) {
    const d = distance(lower, candidate.toLowerCase());
    if (d < bestDistance) {
      best = candidate;
      bestDistance = d;
    }
  }
  return bestDistance <= Math.max(2, Math.floor(name.length / lettersPerTypo)) ? best : undefined;
}

// ---------------------------------------------------------------------------
// Value checks used by resolveOptions

function integer(name: string, value: unknown, min: number, max = Number.MAX_SAFE_INTEGER): number {
  const what = max === Number.MAX_SAFE_INTEGER
    ? `an integer >= ${min}`
    : `an integer from ${min} to ${max}`;
  if (typeof value !== "number") throw typeError(name, what, value);
  if (!Number.isInteger(value) || value < min || value > max) throw rangeError(name, what, value);
  return value;
}

function positive(name: string, value: unknown): number {
  return integer(name, value, 1);
}

function natural(name: string, value: unknown): number {
  return integer(name, value, 0);
}

/**
 * The largest `recvBytes`: a read buffer that size is allocated for every
 * connection on Deno, and no socket read returns more than a few MiB.
 */
const MAX_RECV_BYTES = 16 * 1024 * 1024;

function readSize(name: string, value: unknown): number {
  return integer(name, value, 1, MAX_RECV_BYTES);
}

function seconds(name: string, value: unknown): number {
  const what = "a number of seconds > 0";
  if (typeof value !== "number") throw typeError(name, what, value);
  if (!Number.isFinite(value) || value <= 0) throw rangeError(name, what, value);
  return value;
}

function boolean(name: string, value: unknown): boolean {
  if (typeof value !== "boolean") throw typeError(name, "true or false", value);
  return value;
}

// Control characters (and DEL) would let a value inject header lines.
function hasControl(text: string): boolean {
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c < 0x20 || c === 0x7f) return true;
  }
  return false;
}

function text(name: string, value: unknown): string {
  if (typeof value !== "string") throw typeError(name, "a string", value);
  if (hasControl(value)) throw rangeError(name, "a string without control characters", value);
  return value;
}

/** A header value we write ourselves (`Server`): printable ASCII. */
function printable(name: string, value: unknown): string {
  const checked = text(name, value);
  for (let i = 0; i < checked.length; i++) {
    if (checked.charCodeAt(i) > 0x7e) {
      throw rangeError(name, "printable ASCII (it is sent in the Server header)", value);
    }
  }
  return checked;
}

/** The authority of a request that has no Host (HTTP/1.0): a host, optionally with a port. */
function authority(name: string, value: unknown): string {
  const checked = text(name, value);
  if (!isAuthority(checked)) {
    throw rangeError(name, "a host name or address, optionally with :port", value);
  }
  return checked;
}

function fn<T>(name: string, value: unknown): T {
  if (typeof value !== "function") throw typeError(name, "a function", value);
  return value as T;
}

/** waitress's slash_fixed_str: trimmed; if non-empty, exactly one leading slash and no trailing slash. */
function slashFixed(value: string): string {
  const trimmed = value.trim();
  if (trimmed === "") return "";
  let start = 0;
  let end = trimmed.length;
  while (start < end && trimmed[start] === "/") start++;
  while (end > start && trimmed[end - 1] === "/") end--;
  // "/" alone means the root: no prefix (waitress would keep "/", which then
  // strips the leading slash from every path).
  return start === end ? "" : "/" + trimmed.slice(start, end);
}

function urlPrefix(value: unknown): string {
  const raw = text("urlPrefix", value);
  const fixed = slashFixed(raw);
  for (const bad of [" ", "?", "#", "\\"]) {
    if (fixed.includes(bad)) {
      throw rangeError("urlPrefix", 'a path such as "/app" (no spaces, "?", "#" or "\\")', value);
    }
  }
  return fixed;
}

function perms(value: unknown): number {
  const what = 'file permissions from 0 to 0o777 (a number, or an octal string such as "600")';
  if (typeof value === "string") {
    const parsed = parseOctal(value);
    if (parsed === undefined || parsed > 0o777) throw rangeError("unixSocketPerms", what, value);
    return parsed;
  }
  if (typeof value !== "number") throw typeError("unixSocketPerms", what, value);
  if (!Number.isInteger(value) || value < 0 || value > 0o777) {
    throw rangeError("unixSocketPerms", what, value);
  }
  return value;
}

function parseOctal(value: string): number | undefined {
  let digits = value.trim();
  if (digits.startsWith("0o") || digits.startsWith("0O")) digits = digits.slice(2);
  if (digits === "" || !/^[0-7]+$/.test(digits)) return undefined;
  return parseInt(digits, 8);
}

// ---------------------------------------------------------------------------
// Address literals (no DNS: this layer is runtime-free, and binding is the
// runtime's job; we only decide which addresses to ask for).

/** A DNS name the runtime may resolve when binding (letters, digits, hyphens, dots). */
function isHostname(host: string): boolean {
  if (host.length === 0 || host.length > 253) return false;
  for (const label of host.split(".")) {
    if (!/^[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?$/.test(label)) return false;
  }
  return true;
}

interface Families {
  ipv4: boolean;
  ipv6: boolean;
}

/**
 * The addresses to bind for one host: `*` and `""` the wildcard (see below), `localhost` the loopbacks, literals themselves (if their
 * family is enabled), other names are passed on for the runtime to resolve.
 * `what` names the option for error messages.
 */
function hostAddresses(host: string, families: Families, what: string, raw: unknown): string[] {
  const lower = host.toLowerCase();
  if (lower === "*" || lower === "") {
    // One dual-stack "::" socket serves both families (IPv4 peers appear as
    // "::ffff:a.b.c.d"): Deno and Bun cannot set IPV6_V6ONLY, so "0.0.0.0"
    // plus "::" on one port would fail with "address in use".
    return [families.ipv6 ? "::" : "0.0.0.0"];
  }
  if (lower === "localhost") {
    const out: string[] = [];
    if (families.ipv4) out.push("127.0.0.1");
    if (families.ipv6) out.push("::1");
    return out;
  }
  if (isIPv4Address(host)) {
    if (!families.ipv4 && raw === undefined) {
      throw new RangeError(
        `${what} defaults to ${
          show(host)
        }, an IPv4 address, but ipv4 is false: give ${what} "::" or "*", or listen addresses`,
      );
    }
    if (!families.ipv4) {
      throw new RangeError(`${what} names an IPv4 address but ipv4 is false, got ${show(raw)}`);
    }
    return [host];
  }
  if (isIPv6Address(host)) {
    if (!families.ipv6) {
      throw new RangeError(`${what} names an IPv6 address but ipv6 is false, got ${show(raw)}`);
    }
    return [lower];
  }
  if (isHostname(host)) return [host];
  throw rangeError(what, 'an IP address, a host name, "localhost" or "*"', raw);
}

function parsePort(text: string, what: string, raw: unknown): number {
  if (!/^[0-9]{1,5}$/.test(text) || Number(text) > 65535) {
    throw rangeError(what, "a port from 0 to 65535", raw);
  }
  return Number(text);
}

type Bind = { kind: "tcp"; host: string; port: number } | { kind: "unix"; path: string };

/** Parses one `listen` entry: `HOST:PORT`, `[V6]:PORT`, `[V6]`, `HOST`, `*:PORT`, `unix:/path`. */
function parseListenEntry(entry: string, defaultPort: number): Bind {
  const what = "listen";
  if (entry.startsWith("unix:")) {
    const path = entry.slice(5);
    if (path === "" || hasControl(path)) {
      throw rangeError(what, '"unix:" followed by a path', entry);
    }
    return { kind: "unix", path };
  }
  if (entry.startsWith("[")) {
    const close = entry.indexOf("]");
    if (close === -1) throw rangeError(what, '"[IPV6]:PORT" with a closing "]"', entry);
    const host = entry.slice(1, close);
    const rest = entry.slice(close + 1);
    if (!isIPv6Address(host)) throw rangeError(what, "an IPv6 address inside [ ]", entry);
    if (rest === "") return { kind: "tcp", host, port: defaultPort };
    if (rest[0] !== ":") throw rangeError(what, '"[IPV6]:PORT"', entry);
    return { kind: "tcp", host, port: parsePort(rest.slice(1), what, entry) };
  }
  const colon = entry.indexOf(":");
  if (colon === -1) return { kind: "tcp", host: entry, port: defaultPort };
  if (entry.indexOf(":", colon + 1) !== -1) {
    // "::1:8080" is ambiguous; waitress splits it on the last colon, which
    // silently binds the wrong address for "::1". Ask for brackets instead.
    throw rangeError(what, 'IPv6 addresses in brackets, e.g. "[::1]:8080"', entry);
  }
  return {
    kind: "tcp",
    host: entry.slice(0, colon),
    port: parsePort(entry.slice(colon + 1), what, entry),
  };
}

/** Splits a list given as one string (space, newline or comma separated) or an array of such strings. */
function splitList(name: string, value: unknown): string[] {
  const items = typeof value === "string" ? [value] : value;
  if (!Array.isArray(items)) throw typeError(name, "a string or an array of strings", value);
  const out: string[] = [];
  for (const item of items) {
    if (typeof item !== "string") throw typeError(name, "a string or an array of strings", value);
    for (const part of item.split(/[\s,]+/)) if (part !== "") out.push(part);
  }
  return out;
}

function resolveListen(options: Options, families: Families): ListenSpec[] {
  const hasHost = options.host !== undefined;
  const hasPort = options.port !== undefined;
  const hasListen = options.listen !== undefined;
  const hasUnix = options.unixSocket !== undefined;
  // waitress's exclusivity rules, with its wording.
  if ((hasHost || hasPort) && hasListen) {
    throw new RangeError("host or port may not be set if listen is set.");
  }
  if (hasUnix && (hasHost || hasPort)) {
    throw new RangeError("unixSocket may not be set if host or port is set.");
  }
  if (hasUnix && hasListen) throw new RangeError("unixSocket may not be set if listen is set.");

  const backlog = options.backlog === undefined
    ? DEFAULTS.backlog
    : integer("backlog", options.backlog, 0, 0x7fffffff);
  const reusePort = options.reusePort === undefined
    ? DEFAULTS.reusePort
    : boolean("reusePort", options.reusePort);
  const unixPerms = options.unixSocketPerms === undefined
    ? DEFAULTS.unixSocketPerms
    : perms(options.unixSocketPerms);

  const binds: Bind[] = [];
  if (hasUnix) {
    const path = text("unixSocket", options.unixSocket);
    if (path === "") throw rangeError("unixSocket", "a socket file path", options.unixSocket);
    binds.push({ kind: "unix", path });
  } else if (hasListen) {
    const entries = splitList("listen", options.listen);
    if (entries.length === 0) throw rangeError("listen", "at least one address", options.listen);
    for (const entry of entries) binds.push(parseListenEntry(entry, DEFAULTS.port));
  } else {
    const port = hasPort ? integer("port", options.port, 0, 65535) : DEFAULTS.port;
    let host = hasHost ? text("host", options.host) : DEFAULTS.host;
    // Accept "[::1]" as well as "::1" for host.
    if (host.startsWith("[") && host.endsWith("]")) host = host.slice(1, -1);
    binds.push({ kind: "tcp", host, port });
  }

  const specs: ListenSpec[] = [];
  const seen = new Set<string>();
  for (const bind of binds) {
    if (bind.kind === "unix") {
      const key = "unix " + bind.path;
      if (seen.has(key)) continue;
      seen.add(key);
      specs.push({ transport: "unix", path: bind.path, perms: unixPerms, backlog });
      continue;
    }
    const what = hasListen ? "listen" : "host";
    const raw = hasListen ? bind.host : options.host;
    for (const hostname of hostAddresses(bind.host, families, what, raw)) {
      // Port 0 asks for a fresh port each time, so it is never a duplicate.
      const key = `tcp ${hostname} ${bind.port}`;
      if (bind.port !== 0 && seen.has(key)) continue;
      seen.add(key);
      // "::" takes IPv4 peers too; with ipv4 false they are refused.
      const ipv6Only = hostname === "::" && !families.ipv4;
      specs.push({
        transport: "tcp",
        hostname,
        port: bind.port,
        reusePort,
        backlog,
        ...(ipv6Only ? { ipv6Only } : {}),
      });
    }
  }
  return specs;
}

function resolveProxyHeaders(
  options: Options,
  trustedProxy: string | undefined,
  logger: Logger,
): Set<string> {
  const headers = new Set<string>();
  if (options.trustedProxyHeaders !== undefined) {
    for (const item of splitList("trustedProxyHeaders", options.trustedProxyHeaders)) {
      const name = item.toLowerCase();
      if (!PROXY_HEADER_NAMES.includes(name)) {
        throw new RangeError(
          `trustedProxyHeaders must name only ${PROXY_HEADER_NAMES.join(", ")}, got ${show(item)}`,
        );
      }
      headers.add(name);
    }
  }
  if (headers.size > 0 && trustedProxy === undefined) {
    throw new RangeError(
      `trustedProxyHeaders has no meaning without setting trustedProxy, got ${
        show(options.trustedProxyHeaders)
      }`,
    );
  }
  if (headers.has("forwarded") && headers.size > 1) {
    throw new RangeError(
      "The Forwarded proxy header and the X-Forwarded-{By,Host,Proto,Port,For} headers are " +
        `mutually exclusive. Can't trust both! trustedProxyHeaders got ${
          show(options.trustedProxyHeaders)
        }`,
    );
  }
  if (trustedProxy !== undefined && headers.size === 0) {
    // waitress's backward-compatible default, with its deprecation notice.
    headers.add("x-forwarded-proto");
    warnOnce(
      logger,
      "trustedProxyHeaders default",
      "trustedProxy is set without trustedProxyHeaders: trusting only X-Forwarded-Proto " +
        "(waitress's default). Set trustedProxyHeaders explicitly.",
    );
  }
  return headers;
}

/**
 * The peer is matched as the socket reports it, so anything that is not an
 * address in that form would silently never match (and trust nobody).
 */
function checkTrustedProxy(value: string, raw: unknown): void {
  if (value === "*" || value === "localhost" || isIPv4Address(value) || isIPv6Address(value)) {
    return;
  }
  const what = 'an IP address as the socket reports it, "localhost" (unix-socket peers) or "*"';
  const why = value.includes("/")
    ? " (address ranges are not supported)"
    : /^[\d.]+:\d+$/.test(value) || /^\[.*\]:\d+$/.test(value)
    ? " (without a port)"
    : /^[a-z\d.-]+$/i.test(value)
    ? " (host names are not resolved)"
    : "";
  throw new RangeError(`trustedProxy must be ${what}${why}, got ${show(raw)}`);
}

function resolveLogger(value: unknown): Logger {
  if (value === undefined) return consoleLogger;
  const candidate = value as Partial<Logger> | null;
  if (
    candidate === null || typeof candidate !== "object" ||
    typeof candidate.info !== "function" || typeof candidate.warn !== "function" ||
    typeof candidate.error !== "function"
  ) {
    throw typeError("logger", "an object with info, warn and error methods", value);
  }
  return guardLogger(candidate as Logger);
}

function resolveSignal(value: unknown): AbortSignal | undefined {
  if (value === undefined) return undefined;
  const candidate = value as Partial<AbortSignal> | null;
  if (
    candidate === null || typeof candidate !== "object" ||
    typeof candidate.aborted !== "boolean" || typeof candidate.addEventListener !== "function"
  ) {
    throw typeError("signal", "an AbortSignal", value);
  }
  return candidate as AbortSignal;
}

/**
 * Validates `options` in one pass and resolves every field (defaults filled
 * in, listen specs expanded). Throws a `TypeError` (wrong type, unknown
 * option) or `RangeError` (bad value, conflicting options) whose message names
 * the option and the bad value. Logs one warning per ignored waitress option.
 */
export function resolveOptions(options: Options = {}): Adjustments {
  if (options === null || typeof options !== "object" || Array.isArray(options)) {
    throw new TypeError(`options must be an object, got ${show(options)}`);
  }
  for (const key of Object.keys(options)) {
    if (!OPTION_NAMES.includes(key)) {
      const hint = closest(key, OPTION_NAMES);
      throw new TypeError(
        `Unknown option ${show(key)}` + (hint ? ` (did you mean "${hint}"?)` : ""),
      );
    }
  }
  // An option explicitly set to undefined counts as not given.
  const o = options as Record<string, unknown>;
  const logger = resolveLogger(o.logger);

  /** The option checked by `check`, or its default when it is not given. */
  const given = <K extends keyof typeof DEFAULTS>(
    name: K,
    check: (name: K, value: unknown) => (typeof DEFAULTS)[K],
  ): (typeof DEFAULTS)[K] => o[name] === undefined ? DEFAULTS[name] : check(name, o[name]);

  const ipv4 = given("ipv4", boolean);
  const ipv6 = given("ipv6", boolean);
  if (!ipv4 && !ipv6) throw new RangeError("ipv4 and ipv6 may not both be false");
  const listen = resolveListen(options, { ipv4, ipv6 });

  let urlScheme: "http" | "https" = DEFAULTS.urlScheme;
  if (o.urlScheme !== undefined) {
    if (typeof o.urlScheme !== "string") {
      throw typeError("urlScheme", '"http" or "https"', o.urlScheme);
    }
    if (o.urlScheme !== "http" && o.urlScheme !== "https") {
      throw rangeError("urlScheme", '"http" or "https"', o.urlScheme);
    }
    urlScheme = o.urlScheme;
  }

  let maxConcurrency = DEFAULTS.maxConcurrency;
  if (o.maxConcurrency !== undefined && o.maxConcurrency !== Infinity) {
    const what = "an integer >= 1 or Infinity";
    if (typeof o.maxConcurrency !== "number") {
      throw typeError("maxConcurrency", what, o.maxConcurrency);
    }
    maxConcurrency = o.maxConcurrency;
    if (!Number.isInteger(maxConcurrency) || maxConcurrency < 1) {
      throw rangeError("maxConcurrency", what, o.maxConcurrency);
    }
  }

  let trustedProxy: string | undefined;
  if (o.trustedProxy !== undefined) {
    const value = text("trustedProxy", o.trustedProxy).trim();
    // waitress's str_iftruthy: an empty string means "none".
    if (value.includes(",")) {
      // waitress matches one address exactly; a list would silently never match.
      throw rangeError("trustedProxy", 'one address (or "*"), not a list', o.trustedProxy);
    }
    if (value !== "") {
      trustedProxy = value.startsWith("[") && value.endsWith("]") ? value.slice(1, -1) : value;
      checkTrustedProxy(trustedProxy, o.trustedProxy);
      // Peers are reported in this form: another spelling would never match.
      if (isIPv6Address(trustedProxy)) trustedProxy = canonicalIPv6(trustedProxy);
    }
  }
  let trustedProxyCount = DEFAULTS.trustedProxyCount;
  if (o.trustedProxyCount !== undefined) {
    trustedProxyCount = positive("trustedProxyCount", o.trustedProxyCount);
    if (trustedProxy === undefined) {
      throw new RangeError(
        `trustedProxyCount has no meaning without setting trustedProxy, got ${
          show(o.trustedProxyCount)
        }`,
      );
    }
  }
  const trustedProxyHeaders = resolveProxyHeaders(options, trustedProxy, logger);

  const adjustments: Adjustments = {
    listen,
    urlScheme,
    urlPrefix: o.urlPrefix === undefined ? DEFAULTS.urlPrefix : urlPrefix(o.urlPrefix),
    ident: given("ident", printable),
    serverName: given("serverName", authority),
    maxConcurrency,
    connectionLimit: given("connectionLimit", positive),
    cleanupInterval: given("cleanupInterval", seconds),
    channelTimeout: given("channelTimeout", seconds),
    logSocketErrors: given("logSocketErrors", boolean),
    maxRequestHeaderSize: given("maxRequestHeaderSize", positive),
    maxRequestHeaders: given("maxRequestHeaders", positive),
    maxRequestBodySize: given("maxRequestBodySize", natural),
    exposeTracebacks: given("exposeTracebacks", boolean),
    recvBytes: given("recvBytes", readSize),
    outbufHighWatermark: given("outbufHighWatermark", positive),
    channelRequestLookahead: given("channelRequestLookahead", natural),
    trustedProxy,
    trustedProxyCount,
    trustedProxyHeaders,
    clearUntrustedProxyHeaders: given("clearUntrustedProxyHeaders", boolean),
    logUntrustedProxyHeaders: given("logUntrustedProxyHeaders", boolean),
    signal: resolveSignal(o.signal),
    onListen: o.onListen === undefined ? undefined : fn("onListen", o.onListen),
    onError: o.onError === undefined ? undefined : fn("onError", o.onError),
    logger,
  };

  // Validate the ignored waitress options like the rest, then warn once each.
  for (const name of IGNORED_OPTIONS) {
    const value = o[name];
    if (value === undefined) continue;
    if (name === "asyncoreUsePoll") boolean(name, value);
    else if (name === "asyncoreLoopTimeout") seconds(name, value);
    else integer(name, value, name === "threads" ? 1 : 0);
    const why = name === "threads"
      ? "threads is ignored: the app runs on one event loop where a slow await blocks nobody; " +
        "use maxConcurrency to cap app calls in flight, or the CLI's --threads N for N workers"
      : `${name} is a waitress tuning option with no meaning here; ignored`;
    warnOnce(logger, "ignored " + name, why);
  }
  return adjustments;
}

// ---------------------------------------------------------------------------
// Strings -> Options

const TRUE_WORDS = ["true", "yes", "on", "1", "y", "t"];
const FALSE_WORDS = ["false", "no", "off", "0", "n", "f"];

/** Parses a boolean word (true/false/yes/no/on/off/1/0, any case); undefined when it is none of them. */
export function parseBoolean(value: string): boolean | undefined {
  const word = value.trim().toLowerCase();
  if (TRUE_WORDS.includes(word)) return true;
  if (FALSE_WORDS.includes(word)) return false;
  return undefined;
}

const SIZE_UNITS: Record<string, number> = {
  "": 1,
  b: 1,
  k: 1024,
  kb: 1024,
  kib: 1024,
  m: 1024 ** 2,
  mb: 1024 ** 2,
  mib: 1024 ** 2,
  g: 1024 ** 3,
  gb: 1024 ** 3,
  gib: 1024 ** 3,
};

/** Parses a byte size: digits with an optional unit k/kb/kib, m/mb/mib, g/gb/gib (all powers of 1024). */
export function parseSize(value: string): number | undefined {
  const match = /^([0-9]+(?:\.[0-9]+)?)\s*([a-z]*)$/.exec(value.trim().toLowerCase());
  if (match === null) return undefined;
  const unit = SIZE_UNITS[match[2]];
  if (unit === undefined) return undefined;
  const bytes = Number(match[1]) * unit;
  return Number.isSafeInteger(bytes) ? bytes : undefined;
}

function fromString(name: string, kind: StringKind, value: string): unknown {
  const trimmed = value.trim();
  switch (kind) {
    case "string":
      return value;
    case "list":
      return splitList(name, value);
    case "bool": {
      const parsed = parseBoolean(trimmed);
      if (parsed === undefined) {
        throw rangeError(name, "true/false, yes/no, on/off or 1/0", value);
      }
      return parsed;
    }
    case "int": {
      // Only the form here: the range, which is the option's own, is checked
      // (and named) with the other options, for "-1" as for -1.
      if (!/^-?[0-9]+$/.test(trimmed)) throw rangeError(name, "an integer", value);
      return Number(trimmed);
    }
    case "limit": {
      const word = trimmed.toLowerCase();
      if (["none", "unlimited", "inf", "infinity"].includes(word)) return Infinity;
      if (!/^[0-9]+$/.test(trimmed)) {
        throw rangeError(name, 'an integer >= 1 or "unlimited"', value);
      }
      return Number(trimmed);
    }
    case "size": {
      const parsed = parseSize(trimmed);
      if (parsed === undefined) {
        throw rangeError(name, 'a size in bytes such as "8192", "64k" or "1m"', value);
      }
      return parsed;
    }
    case "seconds": {
      if (!/^[0-9]+(?:\.[0-9]+)?$/.test(trimmed)) {
        throw rangeError(name, "a number of seconds", value);
      }
      return Number(trimmed);
    }
    case "octal": {
      const parsed = parseOctal(trimmed);
      if (parsed === undefined) throw rangeError(name, 'octal permissions such as "600"', value);
      return parsed;
    }
  }
}

/**
 * Parses string values (CLI flags, environment) into {@link Options}. Keys
 * are camelCase option names. Sizes take k/m/g suffixes, booleans
 * true/false/yes/no/1/0/on/off (or a real boolean, as from a flag without a
 * value), perms are octal, lists are space- or comma-separated (an array is
 * several occurrences: they add up for lists; the last wins otherwise).
 * Throws naming the option on an unknown name or a bad value. The result
 * still goes through {@link resolveOptions}, which checks ranges.
 */
export function optionsFromStrings(values: Record<string, string | string[] | boolean>): Options {
  const out: Record<string, unknown> = {};
  for (const [name, raw] of Object.entries(values)) {
    const kind = STRING_OPTIONS[name];
    if (kind === undefined) {
      if (FUNCTION_OPTIONS.includes(name)) {
        throw new TypeError(`${name} cannot be given as a string`);
      }
      const hint = closest(name, Object.keys(STRING_OPTIONS));
      throw new TypeError(
        `Unknown option ${show(name)}` + (hint ? ` (did you mean "${hint}"?)` : ""),
      );
    }
    if (typeof raw === "boolean") {
      if (kind !== "bool") throw rangeError(name, "given a value", raw);
      out[name] = raw;
      continue;
    }
    if (Array.isArray(raw)) {
      if (raw.some((item) => typeof item !== "string")) {
        throw typeError(name, "a string or an array of strings", raw);
      }
      if (raw.length === 0) continue;
      out[name] = kind === "list"
        ? splitList(name, raw)
        : fromString(name, kind, raw[raw.length - 1]);
      continue;
    }
    if (typeof raw !== "string") throw typeError(name, "a string", raw);
    out[name] = fromString(name, kind, raw);
  }
  return out as Options;
}
