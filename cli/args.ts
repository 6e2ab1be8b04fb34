/**
 * Command-line flags -> Options, with waitress-serve's spellings: every
 * option is `--name-with-dashes=VALUE` (or `--name VALUE`), booleans are
 * `--flag` / `--no-flag`, `--listen` repeats. Also the help text.
 * @module
 */
import type { Options } from "./core.ts";
import {
  closest,
  DEFAULTS,
  optionsFromStrings,
  STRING_OPTIONS,
  type StringKind,
} from "./options.ts";

/** A usage error: printed as one line, exit code 1. */
export class CliError extends Error {
  /** Always `"CliError"`. */
  override name = "CliError";
}

/** What the command line asks for. */
export interface ParsedArgs {
  /** `--help` / `-h`. */
  help: boolean;
  /** `--version`. */
  version: boolean;
  /** `--call`: the export is a factory to call for the app. */
  call: boolean;
  /** The `module[:name]` to serve (positional or `--app`). */
  app: string | undefined;
  /** `--threads` / `--workers`: how many workers share the port (1 = serve in this process). */
  threads: number;
  /** `--worker-timeout`: seconds a worker may go without answering before it is replaced (0: never). */
  workerTimeout: number;
  /** `--graceful-timeout`: seconds a graceful close waits for responses in flight (0: no limit). */
  gracefulTimeout: number;
  /** The server options given (threads not included). */
  options: Options;
}

/** camelCase option name -> `--kebab-case` flag. */
export function flagOf(option: string): string {
  return "--" + option.replace(/[A-Z]/g, (c) => "-" + c.toLowerCase());
}

/** `kebab-case` flag name (without dashes) -> camelCase option name. */
function optionOf(flag: string): string {
  return flag.replace(/-([a-z0-9])/g, (_, c: string) => c.toUpperCase());
}

/** Help for each option: [metavar, text, shown default]. */
const HELP: Record<string, [string, string, string?]> = {
  host: ["ADDR", 'Address to bind ("*" = all, "localhost" = loopbacks)', DEFAULTS.host],
  port: ["PORT", "TCP port to bind (0 = any free port)", String(DEFAULTS.port)],
  listen: [
    "ADDR",
    "Listen on HOST:PORT, [IPV6]:PORT, *:PORT or unix:/path; repeatable; not with --host/--port",
    `${DEFAULTS.host}:${DEFAULTS.port}`,
  ],
  unixSocket: ["PATH", "Listen on a unix domain socket instead of TCP", "none"],
  unixSocketPerms: ["PERMS", "Octal permissions of the unix socket", "600"],
  ipv4: ["", "Allow IPv4 when expanding * and localhost (--no-ipv4 to turn off)", "on"],
  ipv6: ["", "Allow IPv6 when expanding * and localhost (--no-ipv6 to turn off)", "on"],
  backlog: ["INT", "listen() backlog", String(DEFAULTS.backlog)],
  reusePort: ["", "Share the port with other processes (SO_REUSEPORT)", "off"],
  urlScheme: ["STR", "Request scheme unless a trusted proxy says otherwise", DEFAULTS.urlScheme],
  urlPrefix: ["STR", "Mount point: info.scriptName, removed from info.pathInfo", '""'],
  ident: ["STR", 'Server header value ("" = none)', DEFAULTS.ident],
  serverName: ["NAME", "Host in request.url when a request has no Host", DEFAULTS.serverName],
  maxConcurrency: [
    "INT",
    "Most app calls in flight (per worker); the rest wait in order",
    "unlimited",
  ],
  connectionLimit: ["INT", "Most open connections (per worker)", String(DEFAULTS.connectionLimit)],
  cleanupInterval: [
    "SECS",
    "Seconds between idle-connection sweeps",
    String(DEFAULTS.cleanupInterval),
  ],
  channelTimeout: [
    "SECS",
    "Idle seconds before a connection is closed",
    String(DEFAULTS.channelTimeout),
  ],
  logSocketErrors: ["", "Log socket errors (--no-log-socket-errors to silence)", "on"],
  maxRequestHeaderSize: [
    "SIZE",
    "Largest request header block (bytes, or 64k/1m); larger gets 431",
    String(DEFAULTS.maxRequestHeaderSize),
  ],
  maxRequestHeaders: [
    "INT",
    "Most header lines in a request; more gets 431",
    String(DEFAULTS.maxRequestHeaders),
  ],
  maxRequestBodySize: [
    "SIZE",
    "Largest request body; larger gets 413",
    String(DEFAULTS.maxRequestBodySize),
  ],
  exposeTracebacks: ["", "Put the exception's stack in 500 responses", "off"],
  recvBytes: ["SIZE", "Bytes read from a socket at once (Deno)", String(DEFAULTS.recvBytes)],
  outbufHighWatermark: [
    "SIZE",
    "Pending output that pauses the response body",
    String(DEFAULTS.outbufHighWatermark),
  ],
  channelRequestLookahead: [
    "INT",
    "Requests read ahead per connection (> 0 notices disconnects early)",
    String(DEFAULTS.channelRequestLookahead),
  ],
  trustedProxy: [
    "IP",
    'Peer allowed to send proxy headers ("*" = any, "localhost" = unix peers)',
    "none",
  ],
  trustedProxyCount: [
    "INT",
    "How many proxies in the chain are trusted",
    String(DEFAULTS.trustedProxyCount),
  ],
  trustedProxyHeaders: [
    "LIST",
    "Trusted headers: x-forwarded-for x-forwarded-host x-forwarded-proto x-forwarded-port x-forwarded-by, or forwarded",
    "x-forwarded-proto when --trusted-proxy is set",
  ],
  clearUntrustedProxyHeaders: ["", "Remove untrusted proxy headers from requests", "on"],
  logUntrustedProxyHeaders: ["", "Log removed untrusted proxy headers", "off"],
  sendBytes: ["SIZE", "Accepted for waitress compatibility; ignored", undefined],
  asyncoreLoopTimeout: ["SECS", "Accepted for waitress compatibility; ignored", undefined],
  asyncoreUsePoll: ["", "Accepted for waitress compatibility; ignored", undefined],
  inbufOverflow: ["SIZE", "Accepted for waitress compatibility; ignored", undefined],
  outbufOverflow: ["SIZE", "Accepted for waitress compatibility; ignored", undefined],
};

/** Flags handled by the CLI itself (not server options). */
const CLI_FLAGS = [
  "--help",
  "--version",
  "--call",
  "--app",
  "--threads",
  "--workers",
  "--worker-timeout",
  "--graceful-timeout",
];

/** `--worker-timeout`'s default, in seconds (gunicorn's worker timeout is 30 s too). */
export const DEFAULT_WORKER_TIMEOUT = 30;
/** `--graceful-timeout`'s default, in seconds (as gunicorn's). */
export const DEFAULT_GRACEFUL_TIMEOUT = 30;

/** Every flag spelling the CLI accepts, for suggestions. */
export function allFlags(): string[] {
  const flags = [...CLI_FLAGS];
  for (const [name, kind] of Object.entries(STRING_OPTIONS)) {
    if (name === "threads") continue;
    flags.push(flagOf(name));
    if (kind === "bool") flags.push("--no-" + flagOf(name).slice(2));
  }
  return flags;
}

/** The flag closest to a mistyped one, if any is close enough to be a typo. */
export function suggestFlag(flag: string): string | undefined {
  const typed = flag.toLowerCase().replaceAll("_", "-");
  // One typo per four letters, not three: the "--" every flag shares makes
  // the name longer without telling flags apart.
  const near = closest(typed, allFlags(), 4);
  if (near !== undefined) return near;
  // A truncated flag (--max-request-body): the shortest flag it begins.
  const longer = allFlags().filter((flag) => typed.length >= 5 && flag.startsWith(typed));
  longer.sort((a, b) => a.length - b.length);
  return longer[0];
}

/**
 * Rewrites option names in a validation message as flags, so that
 * `port must be ...` reads `--port must be ...` on the command line.
 */
export function flagify(message: string): string {
  // A boolean option that is false was turned off with its --no- flag.
  const noFlag = (name: string) =>
    name in STRING_OPTIONS ? "--no-" + flagOf(name).slice(2) : undefined;
  message = message
    .replace(/\b(\w+) and (\w+) may not both be false\b/, (text, a: string, b: string) => {
      const [na, nb] = [noFlag(a), noFlag(b)];
      return na && nb ? `${na} and ${nb} may not both be given` : text;
    })
    .replace(/\b(\w+) is false\b/g, (text, name: string) => {
      const flag = noFlag(name);
      return flag ? `${flag} is given` : text;
    });
  const conflict = message.includes("may not be set") || message.includes("has no meaning");
  return message.replace(/\b[a-z][A-Za-z0-9]*\b/g, (word, offset: number) => {
    if (!(word in STRING_OPTIONS)) return word;
    const camel = /[A-Z]/.test(word);
    return camel || offset === 0 || conflict ? flagOf(word) : word;
  });
}

/**
 * `message` with option names written as flags when it is about an option
 * (its first word names one, as the server's warnings about options do);
 * any other line, which may quote what a client sent, as it is.
 */
export function flagifyOptionLine(message: string): string {
  const first = /^[a-z][A-Za-z0-9]*/.exec(message)?.[0];
  return first !== undefined && first in STRING_OPTIONS ? flagify(message) : message;
}

function parseThreads(flag: string, value: string): number {
  const trimmed = value.trim();
  if (!/^[0-9]+$/.test(trimmed) || Number(trimmed) < 1 || Number(trimmed) > 1024) {
    throw new CliError(`${flag} must be an integer from 1 to 1024, got ${JSON.stringify(value)}`);
  }
  return Number(trimmed);
}

/** Whole seconds from 0 (`zero` says what 0 means) to a day. */
function parseSeconds(flag: string, value: string, zero: string): number {
  const trimmed = value.trim();
  if (!/^[0-9]+$/.test(trimmed) || Number(trimmed) > 86400) {
    throw new CliError(
      `${flag} must be a whole number of seconds from 0 (${zero}) to 86400, got ${
        JSON.stringify(value)
      }`,
    );
  }
  return Number(trimmed);
}

/** Parses the arguments (without the program name). Throws `CliError` on a usage error. */
export function parseArgs(argv: readonly string[]): ParsedArgs {
  const parsed: ParsedArgs = {
    help: false,
    version: false,
    call: false,
    app: undefined,
    threads: 1,
    workerTimeout: DEFAULT_WORKER_TIMEOUT,
    gracefulTimeout: DEFAULT_GRACEFUL_TIMEOUT,
    options: {},
  };
  const values: Record<string, string | string[] | boolean> = {};
  const positional: string[] = [];
  let i = 0;
  const takeValue = (flag: string, inline: string | undefined): string => {
    if (inline !== undefined) return inline;
    if (i + 1 >= argv.length) throw new CliError(`${flag} needs a value`);
    return argv[++i];
  };
  for (; i < argv.length; i++) {
    const arg = argv[i];
    if (arg === "--") {
      positional.push(...argv.slice(i + 1));
      break;
    }
    if (arg === "-h") {
      parsed.help = true;
      continue;
    }
    if (!arg.startsWith("-") || arg === "-") {
      positional.push(arg);
      continue;
    }
    if (!arg.startsWith("--")) throw unknownFlag(arg);
    const equals = arg.indexOf("=");
    const flag = equals === -1 ? arg : arg.slice(0, equals);
    const inline = equals === -1 ? undefined : arg.slice(equals + 1);
    switch (flag) {
      case "--help":
      case "--version":
      case "--call":
        if (inline !== undefined) throw new CliError(`${flag} takes no value`);
        parsed[SWITCHES[flag]] = true;
        continue;
      case "--app":
        positional.push(takeValue(flag, inline));
        continue;
      case "--threads":
      case "--workers":
        parsed.threads = parseThreads(flag, takeValue(flag, inline));
        continue;
      case "--worker-timeout":
        parsed.workerTimeout = parseSeconds(flag, takeValue(flag, inline), "never");
        continue;
      case "--graceful-timeout":
        parsed.gracefulTimeout = parseSeconds(flag, takeValue(flag, inline), "no limit");
        continue;
    }
    let name = optionOf(flag.slice(2));
    let negated = false;
    if (!(name in STRING_OPTIONS) && flag.startsWith("--no-")) {
      name = optionOf(flag.slice(5));
      negated = true;
    }
    const kind: StringKind | undefined = name === "threads" ? undefined : STRING_OPTIONS[name];
    if (kind === undefined || (negated && kind !== "bool") || flag !== flag.toLowerCase()) {
      throw unknownFlag(flag);
    }
    if (kind === "bool") {
      if (negated && inline !== undefined) throw new CliError(`${flag} takes no value`);
      values[name] = negated ? false : inline ?? true;
    } else if (kind === "list") {
      const previous = values[name];
      const value = takeValue(flag, inline);
      values[name] = Array.isArray(previous) ? [...previous, value] : [value];
    } else {
      values[name] = takeValue(flag, inline);
    }
  }
  if (positional.length > 1) {
    throw new CliError(
      `Provide only one app (got ${positional.map((p) => JSON.stringify(p)).join(", ")})`,
    );
  }
  parsed.app = positional[0];
  try {
    parsed.options = optionsFromStrings(values);
  } catch (error) {
    throw new CliError(flagify((error as Error).message));
  }
  return parsed;
}

/** The flags that take no value, and what each turns on. */
const SWITCHES = { "--help": "help", "--version": "version", "--call": "call" } as const;

function unknownFlag(flag: string): CliError {
  const hint = suggestFlag(flag);
  return new CliError(`unknown flag ${flag}` + (hint ? ` (did you mean ${hint}?)` : ""));
}

/** The `--help` text: usage and every flag with its default. */
export function helpText(): string {
  const rows: Array<[string, string]> = [];
  const pad = (flag: string, meta: string) => (meta ? `${flag}=${meta}` : flag);
  rows.push(["--help, -h", "Show this help and exit"]);
  rows.push(["--version", "Print the version and exit"]);
  rows.push(["--app=MODULE[:NAME]", "The app to serve (instead of the positional argument)"]);
  rows.push(["--call", "Call the export (a factory) to get the app"]);
  rows.push([
    "--threads=INT, --workers=INT",
    "Run INT workers sharing the port (SO_REUSEPORT); a dead one is restarted [default: 1]",
  ]);
  rows.push([
    "--worker-timeout=SECS",
    "With --threads: replace a worker silent this long (exited, or its event loop blocked); " +
    `0 = never [default: ${DEFAULT_WORKER_TIMEOUT}]`,
  ]);
  rows.push([
    "--graceful-timeout=SECS",
    "On SIGINT/SIGTERM, drop the responses still in flight after this long; " +
    `0 = no limit [default: ${DEFAULT_GRACEFUL_TIMEOUT}]`,
  ]);
  for (const [name, kind] of Object.entries(STRING_OPTIONS)) {
    if (name === "threads") continue;
    const [meta, text, shown] = HELP[name] ?? ["", ""];
    const flag = kind === "bool"
      ? `${flagOf(name)}, --no-${flagOf(name).slice(2)}`
      : pad(flagOf(name), meta);
    rows.push([flag, shown === undefined ? text : `${text} [default: ${shown}]`]);
  }
  // Long flags (the --no- pairs) go on a line of their own so the text column stays narrow.
  const width = Math.min(32, Math.max(...rows.map(([flag]) => flag.length)) + 2);
  const lines = [
    "Usage: waitress [OPTIONS] MODULE[:NAME]",
    "",
    "Serves the fetch handler exported by MODULE (a path relative to the current",
    "directory, or a URL). NAME is the export to use (default: the default export);",
    "it may be a function (request, info) => Response or an object with a fetch",
    "method. With --call, NAME is a factory called (and awaited) to get the app.",
    "",
    "  deno run -A jsr:@waitress/cli --port=8080 app.ts",
    "  bun run cli/mod.ts --listen=127.0.0.1:8080 --listen=[::1]:8080 app.ts:handler",
    "",
    "Options (sizes take k/m/g suffixes; booleans also take =yes/no, =true/false, =1/0):",
  ];
  for (const [flag, text] of rows) {
    lines.push(
      flag.length + 2 > width
        ? `  ${flag}\n${" ".repeat(width + 2)}${text}`
        : `  ${flag.padEnd(width)}${text}`,
    );
  }
  return lines.join("\n");
}
