/**
 * Trusted proxy headers, with waitress's semantics: when the peer is the
 * trusted proxy, `Forwarded` or `X-Forwarded-*` rewrite the request's scheme,
 * authority and remote address; proxy headers that are not trusted are
 * removed (and optionally logged). Malformed trusted values give a 400.
 *
 * Runs for every request, so the common case (no proxy header at all) is one
 * scan of the header names with no allocation.
 * @module
 */
import type { Addr } from "./runtime/types.ts";
import type { Logger } from "./logger.ts";
import { canonicalIPv6 } from "./ipv6.ts";

/** The proxy settings `applyProxyHeaders` reads (`Adjustments` satisfies it). */
export interface ProxyConfig {
  /** The peer allowed to send proxy headers (`"*"` for any, `"localhost"` for unix-socket peers), or undefined. */
  trustedProxy: string | undefined;
  /** How many proxies at the end of the chain are trusted. */
  trustedProxyCount: number;
  /** Lower-case names of the trusted headers. */
  trustedProxyHeaders: Set<string>;
  /** Remove proxy headers that are not trusted. */
  clearUntrustedProxyHeaders: boolean;
  /** Warn when untrusted proxy headers are removed. */
  logUntrustedProxyHeaders: boolean;
}

/** The parts of a request the proxy headers may rewrite. */
export interface ProxyView {
  /** The request scheme. */
  scheme: "http" | "https";
  /** `host[:port]` used for the URL (and the Host header). */
  authority: string;
  /** The peer, or the client a trusted proxy names. */
  remoteAddr: Addr;
  /** Request headers: name as sent, value. */
  headers: Array<[string, string]>;
}

// One bit per recognised proxy header.
const FOR = 1;
const HOST = 2;
const PROTO = 4;
const PORT = 8;
const BY = 16;
const FORWARDED = 32;
const ALL = FOR | HOST | PROTO | PORT | BY | FORWARDED;

// Canonical spellings, for log lines, in waitress's order.
const DISPLAY: Array<[number, string]> = [
  [FOR, "X-Forwarded-For"],
  [HOST, "X-Forwarded-Host"],
  [PROTO, "X-Forwarded-Proto"],
  [PORT, "X-Forwarded-Port"],
  [BY, "X-Forwarded-By"],
  [FORWARDED, "Forwarded"],
];

/** `name` (as long as `lower`) equals the lower-case ASCII `lower`, ignoring ASCII case. */
export function equalsLower(name: string, lower: string): boolean {
  for (let i = 0; i < lower.length; i++) {
    let c = name.charCodeAt(i);
    if (c >= 0x41 && c <= 0x5a) c |= 0x20;
    if (c !== lower.charCodeAt(i)) return false;
  }
  return true;
}

/** The proxy-header bit for a header name, 0 for any other header. No allocation. */
function bitOf(name: string): number {
  switch (name.length) {
    case 9:
      return equalsLower(name, "forwarded") ? FORWARDED : 0;
    case 14:
      return equalsLower(name, "x-forwarded-by") ? BY : 0;
    case 15:
      return equalsLower(name, "x-forwarded-for") ? FOR : 0;
    case 16:
      if (equalsLower(name, "x-forwarded-host")) return HOST;
      return equalsLower(name, "x-forwarded-port") ? PORT : 0;
    case 17:
      return equalsLower(name, "x-forwarded-proto") ? PROTO : 0;
    default:
      return 0;
  }
}

/** A header value that is invalid; becomes the 400's detail. */
class Malformed extends Error {
  constructor(readonly header: string, reason: string, readonly value: string) {
    super(reason);
  }
}

// quoted-string per RFC 9110 §5.6.4: qdtext = HTAB / SP / %x21 / %x23-5B /
// %x5D-7E / obs-text; quoted-pair = "\" ( HTAB / SP / VCHAR / obs-text ).
function isQdtext(c: number): boolean {
  return c === 0x09 || c === 0x20 || c === 0x21 || (c >= 0x23 && c <= 0x5b) ||
    (c >= 0x5d && c <= 0x7e) || (c >= 0x80 && c <= 0xff);
}

function isPairChar(c: number): boolean {
  return c === 0x09 || (c >= 0x20 && c <= 0x7e) || (c >= 0x80 && c <= 0xff);
}

/**
 * waitress's `undquote`: a value wrapped in double quotes must be one valid
 * quoted-string (then unescaped); a quote on one side only is an error.
 */
function undquote(value: string): string {
  const starts = value.startsWith('"');
  const ends = value.length > 1 && value.endsWith('"');
  if (!starts && !value.endsWith('"')) return value;
  if (starts && ends) {
    let out = "";
    let i = 1;
    const last = value.length - 1;
    while (i < last) {
      const c = value.charCodeAt(i);
      if (c === 0x5c) {
        if (i + 1 >= last || !isPairChar(value.charCodeAt(i + 1))) break;
        out += value[i + 1];
        i += 2;
      } else if (isQdtext(c)) {
        out += value[i];
        i++;
      } else {
        break;
      }
    }
    if (i === last) return out;
  }
  throw new Error("Invalid quoting in value");
}

/** Splits on commas and keeps the last `count` raw parts. */
function lastRaw(value: string, count: number): string[] {
  const parts = value.split(",");
  return parts.slice(Math.max(0, parts.length - count));
}

/** A port written as 1-5 digits, at most 65535. */
function isPort(text: string): boolean {
  if (text.length === 0 || text.length > 5) return false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c < 0x30 || c > 0x39) return false;
  }
  return Number(text) <= 65535;
}

// uri-host: an IP literal in brackets, or reg-name/IPv4 characters
// (unreserved, pct-encoded, sub-delims). Anything else ("/", "@", "?", "#",
// spaces) would change the URL the server builds from the authority. Only
// runs when a trusted proxy sent a host, so a regex is fine here.
const IP_LITERAL = /^\[[0-9A-Za-z:.%_~-]+\]$/;
const REG_NAME = /^[A-Za-z0-9\-._~%!$&'()*+,;=]+$/;

function isUriHost(host: string): boolean {
  return host.startsWith("[") ? IP_LITERAL.test(host) : REG_NAME.test(host);
}

/** What the trusted headers say, before it is applied to the view. */
interface Parsed {
  /** Bits of the proxy headers that are trusted (kept). */
  trusted: number;
  /** New values for headers waitress rewrites to their trusted part. */
  rewrites: Map<number, string>;
  client: string;
  host: string;
  proto: string;
  port: string;
  /** Which header the proto came from, for the error message. */
  protoHeader: string;
  hostHeader: string;
}

/** Joins the values of every line of one proxy header, as a WSGI environ would. */
function valueOf(headers: Array<[string, string]>, bit: number): string | undefined {
  let value: string | undefined;
  for (let i = 0; i < headers.length; i++) {
    if (bitOf(headers[i][0]) === bit) {
      value = value === undefined ? headers[i][1] : value + ", " + headers[i][1];
    }
  }
  return value;
}

function parseXForwarded(
  config: ProxyConfig,
  headers: Array<[string, string]>,
  present: number,
  parsed: Parsed,
): void {
  const trusted = config.trustedProxyHeaders;
  const count = config.trustedProxyCount;
  if (trusted.has("x-forwarded-for")) {
    parsed.trusted |= FOR;
    if (present & FOR) {
      const raw = valueOf(headers, FOR)!;
      try {
        parsed.client = bracketBareIPv6(firstTrusted(raw, count));
        parsed.rewrites.set(FOR, lastRaw(raw, count).join(",").trim());
      } catch (error) {
        throw new Malformed("X-Forwarded-For", (error as Error).message, raw);
      }
    }
  }
  if (trusted.has("x-forwarded-host")) {
    parsed.trusted |= HOST;
    if (present & HOST) {
      const raw = valueOf(headers, HOST)!;
      try {
        parsed.host = firstTrusted(raw, count);
        parsed.hostHeader = "X-Forwarded-Host";
        parsed.rewrites.set(HOST, lastRaw(raw, count).join(",").trim());
      } catch (error) {
        throw new Malformed("X-Forwarded-Host", (error as Error).message, raw);
      }
    }
  }
  if (trusted.has("x-forwarded-proto")) {
    parsed.trusted |= PROTO;
    parsed.proto = single("X-Forwarded-Proto", valueOf(headers, PROTO));
    parsed.protoHeader = "X-Forwarded-Proto";
  }
  if (trusted.has("x-forwarded-port")) {
    parsed.trusted |= PORT;
    const raw = valueOf(headers, PORT);
    parsed.port = single("X-Forwarded-Port", raw);
    // waitress passes any value on; a port that is not a number would make
    // an invalid URL, so it is malformed here.
    if (parsed.port !== "" && !isPort(parsed.port)) {
      throw new Malformed("X-Forwarded-Port", "Port is not a number from 0 to 65535", raw!);
    }
  }
  // Kept for the app, never used by the server (as in waitress).
  if (trusted.has("x-forwarded-by")) parsed.trusted |= BY;
}

/**
 * The first of the last `count` entries of a list header, unquoted: the
 * one the outermost trusted proxy wrote. Only those entries are checked (a
 * malformed one throws); what the client put before them is not read
 * (waitress parses it all, so a client's stray quote there was its own 400).
 */
function firstTrusted(raw: string, count: number): string {
  const kept = lastRaw(raw, count);
  for (let i = 1; i < kept.length; i++) undquote(kept[i].trim());
  return undquote(kept[0].trim());
}

/**
 * A bare IPv6 address (several colons, no brackets) has no port: bracketed,
 * so that splitting off a port leaves it whole.
 */
function bracketBareIPv6(node: string): string {
  const colon = node.indexOf(":");
  const bare = !node.startsWith("[") && colon !== -1 && node.indexOf(":", colon + 1) !== -1;
  return bare ? `[${node}]` : node;
}

/**
 * A single-valued header (proto, port): unquoted, as it is (`" https "` is
 * not https, as in waitress); a comma means several values, refused.
 */
function single(header: string, raw: string | undefined): string {
  if (raw === undefined) return "";
  try {
    const value = undquote(raw.trim());
    if (value.includes(",")) {
      throw new Error("Unspecified behavior for multiple values found in header");
    }
    return value;
  } catch (error) {
    throw new Malformed(header, (error as Error).message, raw);
  }
}

function parseForwarded(
  config: ProxyConfig,
  headers: Array<[string, string]>,
  present: number,
  parsed: Parsed,
  logger: Logger,
): void {
  parsed.trusted = FORWARDED;
  if (!(present & FORWARDED)) return;
  const raw = valueOf(headers, FORWARDED)!;
  const elements: Array<{ for: string; host: string; proto: string }> = [];
  // Only the last trustedProxyCount elements are read, as for X-Forwarded-For:
  // what the client wrote before them is its own (waitress parses it all, so
  // a client's malformed element was a 400, its unknown tokens log lines).
  const kept = lastRaw(raw, config.trustedProxyCount);
  // Said once a request: a header of many unknown pairs must not make as many log lines.
  let unknown = "";
  let unknownCount = 0;
  try {
    for (const rawElement of kept) {
      const element = { for: "", host: "", proto: "" };
      // Pairs found with indexOf, not split(";"): on Bun, splitting a long
      // element and lower-casing the parts costs more a pair the more pairs.
      const text = rawElement.trim();
      for (let start = 0, end = 0; start <= text.length; start = end + 1) {
        end = text.indexOf(";", start);
        if (end === -1) end = text.length;
        if (end === start) continue;
        const equals = text.indexOf("=", start);
        if (equals === -1 || equals > end) throw new Error('Invalid forwarded-pair missing "="');
        // waitress lower-cases the whole pair, value included.
        const token = text.slice(start, equals).toLowerCase();
        const value = text.slice(equals + 1, end).toLowerCase();
        if (token.trim() !== token) throw new Error("Token may not be surrounded by whitespace");
        if (value.trim() !== value) throw new Error("Value may not be surrounded by whitespace");
        // RFC 7239 wants an IPv6 node quoted and bracketed; one that is not
        // is still an address, not a host and a port.
        if (token === "for") element.for = bracketBareIPv6(undquote(value));
        else if (token === "host") element.host = undquote(value);
        else if (token === "proto") element.proto = undquote(value);
        else if (token === "by") undquote(value);
        else if (unknownCount++ === 0) unknown = token;
      }
      elements.push(element);
    }
  } catch (error) {
    throw new Malformed("Forwarded", (error as Error).message, raw);
  }
  if (unknownCount > 0) {
    logger.warn(
      `Unknown Forwarded token: ${shortened(unknown)}` +
        (unknownCount > 1 ? ` (and ${unknownCount - 1} more)` : ""),
    );
  }
  // From the newest trusted element to the oldest: the oldest one that has a
  // parameter wins, because it holds what the client itself asked for.
  for (let i = elements.length - 1; i >= 0; i--) {
    if (elements[i].for) parsed.client = elements[i].for;
    if (elements[i].host) parsed.host = elements[i].host;
    if (elements[i].proto) parsed.proto = elements[i].proto;
  }
  parsed.protoHeader = "Forwarded Proto=";
  parsed.hostHeader = "Forwarded";
  parsed.rewrites.set(FORWARDED, kept.join(",").trim());
}

/** The peer's identity as waitress sees it: its IP, or "localhost" for a unix socket. */
function peerName(addr: Addr): string {
  return addr.transport === "unix" ? "localhost" : (addr.hostname ?? "");
}

/** The last IPv6 peer put in RFC 5952's form, and that form (a client's requests come in a row). */
let lastPeer = "";
let lastCanonical = "";

function isTrusted(trustedProxy: string, peer: string): boolean {
  if (trustedProxy === "*" || peer === trustedProxy) return true;
  if (!peer.includes(":")) return false;
  // IPv6 as the runtime printed it, in the form trustedProxy was put in
  // (runtimes differ: `::1.2.3.4` or `::102:304`); a dual-stack listener
  // reports IPv4 peers as IPv4-mapped addresses ("::ffff:10.0.0.1").
  if (peer !== lastPeer) [lastPeer, lastCanonical] = [peer, canonicalIPv6(peer)];
  return lastCanonical === trustedProxy ||
    (lastCanonical.startsWith("::ffff:") && lastCanonical.slice(7) === trustedProxy);
}

/** Splits `host:port` on the last colon unless the value ends with "]" (an IPv6 literal). */
function splitHostPort(value: string): [string, string | undefined] {
  const colon = value.lastIndexOf(":");
  if (colon === -1 || value.endsWith("]")) return [value, undefined];
  return [value.slice(0, colon), value.slice(colon + 1)];
}

function stripBrackets(value: string): string {
  return value.startsWith("[") && value.endsWith("]") ? value.slice(1, -1) : value;
}

/** The scheme, authority and remote address the parsed values give, waitress's rules (§5.4). */
function applyValues(
  parsed: Parsed,
  view: ProxyView,
): { scheme: "http" | "https"; authority: string; remoteAddr: Addr } {
  let scheme = view.scheme;
  let port = parsed.port;
  if (parsed.proto !== "") {
    const proto = parsed.proto.toLowerCase();
    if (proto !== "http" && proto !== "https") {
      throw new Malformed(parsed.protoHeader, "unsupported proto value", parsed.proto);
    }
    scheme = proto;
    if (port === "") port = proto === "http" ? "80" : "443";
  }
  let authority = view.authority;
  if (parsed.host !== "") {
    const [host, hostPort] = splitHostPort(parsed.host);
    if (!isUriHost(host.trim())) {
      throw new Malformed(parsed.hostHeader, "Invalid host", parsed.host);
    }
    if (hostPort !== undefined) {
      // The port in the forwarded host wins over X-Forwarded-Port and the
      // proto's default port.
      if (!isPort(hostPort)) throw new Malformed(parsed.hostHeader, "Invalid port", parsed.host);
      authority = parsed.host;
    } else {
      authority = host;
      if (
        port !== "" &&
        ((port !== "80" && port !== "443") || (port === "80" && scheme !== "http") ||
          (port === "443" && scheme !== "https"))
      ) {
        authority = `${host}:${port}`;
      }
    }
  }
  let remoteAddr = view.remoteAddr;
  if (parsed.client !== "") {
    const [address, clientPort] = splitHostPort(parsed.client);
    const hostname = stripBrackets(address.trim());
    // An obfuscated or missing port (RFC 7239 "_x", none) is left out rather
    // than keeping the proxy's own port next to the client's address.
    remoteAddr = clientPort !== undefined && isPort(clientPort.trim())
      ? Object.freeze({ transport: "tcp", hostname, port: Number(clientPort.trim()) })
      : Object.freeze({ transport: "tcp", hostname });
  }
  return { scheme, authority, remoteAddr };
}

/**
 * Applies waitress's trusted-proxy semantics to one request. Returns the same
 * `view` object untouched when nothing applies (no allocation when no proxy
 * header is present), a new view when something changed (scheme, authority
 * and the Host header, remote address, proxy headers removed or rewritten to
 * their trusted part), or `{ error }` for a 400, whose detail names the header
 * in waitress's wording, e.g. `Header "X-Forwarded-Proto" malformed.`
 */
export function applyProxyHeaders(
  config: ProxyConfig,
  view: ProxyView,
  logger: Logger,
): ProxyView | { error: string } {
  const headers = view.headers;
  let present = 0;
  for (let i = 0; i < headers.length; i++) present |= bitOf(headers[i][0]);
  if (present === 0) return view;

  let trusted = 0;
  let rewrites: Map<number, string> | undefined;
  let changed: { scheme: "http" | "https"; authority: string; remoteAddr: Addr } | undefined;
  const peer = peerName(view.remoteAddr);
  if (config.trustedProxy !== undefined && isTrusted(config.trustedProxy, peer)) {
    const parsed: Parsed = {
      trusted: 0,
      rewrites: new Map(),
      client: "",
      host: "",
      proto: "",
      port: "",
      protoHeader: "X-Forwarded-Proto",
      hostHeader: "X-Forwarded-Host",
    };
    try {
      if (config.trustedProxyHeaders.has("forwarded")) {
        parseForwarded(config, headers, present, parsed, logger);
      } else {
        parseXForwarded(config, headers, present, parsed);
      }
      changed = applyValues(parsed, view);
    } catch (error) {
      if (!(error instanceof Malformed)) throw error;
      logger.warn(
        `Malformed proxy header "${error.header}" from "${peer}": ${error.message} value: ${
          shortened(error.value)
        }`,
      );
      return { error: `Header "${error.header}" malformed.` };
    }
    trusted = parsed.trusted;
    rewrites = parsed.rewrites;
  }

  const untrustedPresent = present & ALL & ~trusted;
  const clearing = config.clearUntrustedProxyHeaders && untrustedPresent !== 0;
  const authorityChanged = changed !== undefined && changed.authority !== view.authority;
  let rewriting = false;
  if (rewrites !== undefined) {
    for (const [bit, value] of rewrites) {
      if (value !== valueOf(headers, bit)) rewriting = true;
    }
  }
  if (!clearing && !rewriting && !authorityChanged) {
    if (
      changed === undefined ||
      (changed.scheme === view.scheme && changed.remoteAddr === view.remoteAddr)
    ) {
      return view;
    }
    return { ...changed, headers };
  }

  const out: Array<[string, string]> = [];
  let written = 0; // bits of rewritten headers already emitted
  let hostSeen = false;
  for (let i = 0; i < headers.length; i++) {
    const header = headers[i];
    const bit = bitOf(header[0]);
    if (bit === 0) {
      if (authorityChanged && header[0].length === 4 && equalsLower(header[0], "host")) {
        if (!hostSeen) out.push([header[0], changed!.authority]);
        hostSeen = true;
        continue;
      }
      out.push(header);
    } else if (bit & trusted) {
      const rewrite = rewrites?.get(bit);
      if (rewrite === undefined) out.push(header);
      else if (!(written & bit)) {
        // Several lines of one header become one line with the trusted part.
        out.push([header[0], rewrite]);
        written |= bit;
      }
    } else if (!config.clearUntrustedProxyHeaders) {
      out.push(header);
    }
  }
  if (authorityChanged && !hostSeen) out.push(["Host", changed!.authority]);

  if (clearing && config.logUntrustedProxyHeaders) {
    const names = DISPLAY.filter(([bit]) => untrustedPresent & bit).map(([, name]) => name);
    logger.warn(
      `Removed untrusted headers (${names.join(", ")}). ` +
        "Waitress recommends these be removed upstream.",
    );
  }
  return {
    scheme: changed?.scheme ?? view.scheme,
    authority: changed?.authority ?? view.authority,
    remoteAddr: changed?.remoteAddr ?? view.remoteAddr,
    headers: out,
  };
}

/** Longest client text a log line repeats. */
const LOGGED_TEXT = 256;

/** `text` cut for a log line: a header may be hundreds of KiB. */
function shortened(text: string): string {
  return text.length <= LOGGED_TEXT
    ? text
    : `${text.slice(0, LOGGED_TEXT)}… (${text.length} characters)`;
}
