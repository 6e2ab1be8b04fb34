/**
 * The sans-IO, incremental HTTP/1.1 request parser (RFC 9112 §2-§9, RFC 9110
 * §5, §8.6, §10.1.1). It never touches a socket: the channel pushes the bytes
 * it reads and pulls events (`head`, `body`, `end`, `error`) until `next()`
 * returns null.
 *
 * Design notes (why it looks the way it does):
 * - Everything works on bytes with lookup tables and hand-written digit/hex/
 *   token checks. No `Number()`, `parseInt()`, `trim()`, `toLowerCase()` or
 *   regular expression ever sees client input (each of those has recreated a
 *   request-smuggling bug somewhere; see the notes in the issue).
 * - A head is checked line by line, in one pass, as soon as a line is
 *   complete. The outcome depends only on the bytes, never on how they were
 *   split: every decision is taken on a whole line (through its LF), and the
 *   431 rule is positional (an LF that would land past `maxRequestHeaderSize`
 *   is a 431, whatever else the line holds). When a line is cut by the end of
 *   the buffered bytes, the parser only searches for its LF on later pushes and
 *   checks the line once, so feeding byte by byte stays linear.
 * - Header strings are decoded lazily: the head keeps a view of its bytes and
 *   the field offsets, and `headers` / `get()` decode on first use. Decoding is
 *   latin-1 (one char per byte) by our own code, so Deno, Bun and Node agree.
 * - Body bytes are handed out as views of the pushed chunks. Bytes are copied
 *   only when a head, a chunk line or a trailer line straddles pushes, and
 *   then at most the bytes that line may still need.
 * - A head whose bytes are those of the last bodiless head parsed is that
 *   head again (see `lastHead`): clients repeat their requests, and the same
 *   bytes pass the same checks.
 * @module
 */

import {
  CHUNK_EXT_INVALID,
  CHUNK_SIZE_INVALID,
  CHUNK_SIZE_TOO_LARGE,
  parseChunkLine,
} from "./chunked.ts";

/** Limits the parser enforces. */
export interface ParserLimits {
  /**
   * Request line + header lines + the final CRLF (and any skipped leading
   * CRLFs). A head that needs more gets 431 as soon as that is known. The
   * trailer section of a chunked body is bounded by the same number.
   */
  maxRequestHeaderSize: number;
  /**
   * Most header field lines (default 100); one more gets 431. Each costs the
   * app's `Headers` more than the last, and the parser 16 bytes of offsets.
   */
  maxRequestHeaders?: number;
  /** Content-Length above it: 413 right after the head; chunked: decoded total above it: 413 mid-body. */
  maxRequestBodySize: number;
}

/** An error the server answers with an HTTP status. */
export interface ParseError {
  /** 400, 413, 414, 431, 501 (also for CONNECT) or 505. */
  status: number;
  /** One line saying what was wrong; never echoes client bytes (but a short method token). */
  detail: string;
  /** Every parse error closes the connection. */
  close: true;
}

/** A complete request head. */
export interface RequestHead {
  /** As sent: a token without lower-case letters (those are refused). */
  method: string;
  /** The raw request-target as sent (latin-1 decoded, byte-exact). */
  target: string;
  /** HTTP/1.2 and later 1.x minors are served as "1.1". */
  version: "1.0" | "1.1";
  /**
   * Field lines in order: [name as sent, value with OWS trimmed]. Trailers are
   * never here. A new list at each read: its reader may change it.
   */
  headers: Array<[string, string]>;
  /** The field lines as sent (latin-1): equal texts give equal `headers`. */
  fields: string;
  /** Value by lower-case name; repeated lines joined with ", "; undefined when absent. */
  get(lowerName: string): string | undefined;
  /** Absolute-form target's authority if any, else the Host value, else "". */
  authority: string;
  /** Origin-form: the target; absolute-form: its path and query ("/" if empty); "*" for OPTIONS *. */
  path: string;
  /** How the body is framed. A `Content-Length: 0` request is "length" with `contentLength` 0. */
  bodyKind: "none" | "length" | "chunked";
  /** The Content-Length for "length" (0 otherwise). */
  contentLength: number;
  /** RFC 9112 §9.3: 1.1 unless a "close" token in Connection; 1.0 only with "keep-alive" (and no "close"). */
  keepAlive: boolean;
  /** HTTP/1.1 with a body (length > 0 or chunked) and an `Expect: 100-continue` (case-insensitive). */
  expectContinue: boolean;
  /**
   * A field may be a proxy header (any case): `Forwarded`, or `X-Forwarded-`
   * and 2 to 5 more characters (as `-By` to `-Proto`). Proxy rules must look
   * at the headers.
   */
  proxyHeaders: boolean;
}

/** What `next()` yields. */
export type ParseEvent =
  | { kind: "head"; head: RequestHead }
  | {
    kind: "body";
    data: Uint8Array;
    /**
     * `data` is all of a chunk given to `push`, from its first byte, and the
     * parser holds no reference to it any more: its buffer may be handed on
     * (and detached by whoever gets it) without a copy.
     */
    whole: boolean;
  }
  | { kind: "end" }
  | { kind: "error"; error: ParseError };

/** Longest method an error page names. */
const MAX_ECHOED_METHOD = 32;

/** Longest request-target accepted; a longer one gets 414 URI Too Long. */
export const MAX_TARGET_LENGTH = 16384;
/**
 * Longest chunk control line (size and extensions, CRLF excluded). A longer
 * one gets 400: extensions carry nothing we use, and a cap keeps the bytes
 * held per connection bounded.
 */
export const MAX_CHUNK_LINE_LENGTH = 4096;
/** `maxRequestHeaders` when not given (Apache's `LimitRequestFields`). */
export const DEFAULT_MAX_REQUEST_HEADERS = 100;
/**
 * A chunk line's bytes beyond this (a 16-digit size and its CRLF) are
 * extensions, or whitespace before them. Together they may take up at most
 * `maxRequestHeaderSize` per body: else 4 KiB of them per 1-byte chunk would
 * make every limit counted in body bytes (the unread-body drain, the body
 * size) 4,000 times as much input.
 */
const PLAIN_CHUNK_LINE = 18;

/** A rejection with `status` and the one line saying why (the connection closes). */
export function parseError(status: number, detail: string): ParseError {
  return { status, detail, close: true };
}

const CR = 0x0d;
const LF = 0x0a;
const SP = 0x20;
const HTAB = 0x09;
const COLON = 0x3a;
const COMMA = 0x2c;
const SLASH = 0x2f;

/** tchar (RFC 9110 §5.6.2). */
const TCHAR = new Uint8Array(256);
/** field-value bytes (RFC 9110 §5.5): HTAB, SP, VCHAR, obs-text. */
const VALUE = new Uint8Array(256);
/**
 * Bytes allowed in a request-target: VCHAR except "\" (URL parsers turn it
 * into "/", so a proxy's ACL and the app would see different paths) and "#"
 * (a target has no fragment; a URL would drop what follows it). Raw
 * bytes >= 0x80 are refused too: they are not URI characters, and decoding
 * them as latin-1 and then as a URL would silently change them.
 */
const TARGET = new Uint8Array(256);
/** reg-name bytes besides pct-encoded (RFC 3986 §3.2.2): unreserved / sub-delims. */
const REGNAME = new Uint8Array(256);
/** Scheme bytes after the first letter: ALPHA / DIGIT / "+" / "-" / ".". */
const SCHEME = new Uint8Array(256);
/** HEXDIG value + 1 (0 = not a hex digit). */
const HEX = new Uint8Array(256);

for (let c = 0; c < 256; c++) {
  const digit = c >= 0x30 && c <= 0x39;
  const alpha = (c >= 0x41 && c <= 0x5a) || (c >= 0x61 && c <= 0x7a);
  const ch = String.fromCharCode(c);
  if (digit || alpha || "!#$%&'*+-.^_`|~".includes(ch)) TCHAR[c] = 1;
  if (c === HTAB || (c >= 0x20 && c !== 0x7f)) VALUE[c] = 1;
  if (c >= 0x21 && c <= 0x7e && c !== 0x5c && c !== 0x23) TARGET[c] = 1;
  if (digit || alpha || "-._~!$&'()*+,;=".includes(ch)) REGNAME[c] = 1;
  if (digit || alpha || c === 0x2b || c === 0x2d || c === 0x2e) SCHEME[c] = 1;
  if (digit) HEX[c] = c - 0x30 + 1;
  else if (c >= 0x41 && c <= 0x46) HEX[c] = c - 0x41 + 11;
  else if (c >= 0x61 && c <= 0x66) HEX[c] = c - 0x61 + 11;
}

/**
 * A lower-case ASCII literal for case-insensitive byte comparison: letters
 * compare with their 0x20 bit forced on, every other byte exactly (so a
 * control byte can never pass for a digit or "-").
 */
interface Literal {
  bytes: Uint8Array;
  mask: Uint8Array;
}

function literal(text: string): Literal {
  const bytes = new Uint8Array(text.length);
  const mask = new Uint8Array(text.length);
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    bytes[i] = c;
    mask[i] = c >= 0x61 && c <= 0x7a ? 0x20 : 0;
  }
  return { bytes, mask };
}

const L_HOST = literal("host");
const L_EXPECT = literal("expect");
const L_CONNECTION = literal("connection");
const L_CONTENT_LENGTH = literal("content-length");
const L_TRANSFER_ENCODING = literal("transfer-encoding");
const L_CLOSE = literal("close");
const L_KEEP_ALIVE = literal("keep-alive");
const L_CHUNKED = literal("chunked");
const L_100_CONTINUE = literal("100-continue");
const L_HTTP = literal("http");
const L_HTTPS = literal("https");
const L_FORWARDED = literal("forwarded");
const L_X_FORWARDED = literal("x-forwarded-");

/** True when `b[s, s + lit.length)` equals the literal, ASCII case-insensitively. */
function eqLit(b: Uint8Array, s: number, lit: Literal): boolean {
  const bytes = lit.bytes;
  const mask = lit.mask;
  for (let j = 0; j < bytes.length; j++) {
    if ((b[s + j] | mask[j]) !== bytes[j]) return false;
  }
  return true;
}

/** True when the comma-separated list `b[s, e)` has an element equal to `lit` (OWS around elements ignored). */
function listHas(b: Uint8Array, s: number, e: number, lit: Literal): boolean {
  const n = lit.bytes.length;
  let a = s;
  while (a < e) {
    let z = a;
    while (z < e && b[z] !== COMMA) z++;
    let x = a;
    let y = z;
    while (x < y && (b[x] === SP || b[x] === HTAB)) x++;
    while (y > x && (b[y - 1] === SP || b[y - 1] === HTAB)) y--;
    if (y - x === n && eqLit(b, x, lit)) return true;
    a = z + 1;
  }
  return false;
}

/** Index of the first LF in `b[from, to)`, or -1. */
function findLF(b: Uint8Array, from: number, to: number): number {
  if (from >= to) return -1;
  const i = b.indexOf(LF, from);
  return i >= 0 && i < to ? i : -1;
}

const asciiDecoder = new TextDecoder();
/** Reused argument list for `String.fromCharCode.apply` (decoding never re-enters). */
const scratch: number[] = [];

/**
 * Latin-1 decoding (one UTF-16 unit per byte) by our own code: WHATWG's
 * "latin1" label is windows-1252 and runtimes disagree on it. Long pure-ASCII
 * runs go through the UTF-8 decoder, which every runtime decodes identically
 * there.
 */
function latin1(b: Uint8Array, s: number, e: number): string {
  const n = e - s;
  if (n <= 0) return "";
  if (n <= 64) {
    scratch.length = n;
    for (let i = 0; i < n; i++) scratch[i] = b[s + i];
    return String.fromCharCode.apply(null, scratch);
  }
  let high = 0;
  for (let i = s; i < e; i++) high |= b[i];
  if (high < 0x80) return asciiDecoder.decode(b.subarray(s, e));
  let r = "";
  // Bounded pieces: apply() with a huge argument list can overflow the stack.
  for (let p = s; p < e; p += 4096) {
    const q = p + 4096 < e ? p + 4096 : e;
    r += String.fromCharCode.apply(null, b.subarray(p, q) as unknown as number[]);
  }
  return r;
}

/** The last string decoded at one place of the head, and its bytes. */
interface DecodeCache {
  bytes: Uint8Array;
  length: number;
  text: string;
}

function decodeCache(size: number): DecodeCache {
  return { bytes: new Uint8Array(size), length: -1, text: "" };
}

/**
 * Requests mostly repeat the Host of the one before, and often its target
 * and its whole header section (same client, same headers).
 */
const authorityCache = decodeCache(256);
const targetCache = decodeCache(256);
const fieldsCache = decodeCache(2048);

/** `latin1(b, s, e)`, returning the cached string when the bytes are those decoded last. */
function cachedLatin1(cache: DecodeCache, b: Uint8Array, s: number, e: number): string {
  const n = e - s;
  const known = cache.bytes;
  if (n === cache.length) {
    let i = 0;
    while (i < n && b[s + i] === known[i]) i++;
    if (i === n) return cache.text;
  }
  const text = latin1(b, s, e);
  if (n <= known.length) {
    if (n <= 64) {
      for (let i = 0; i < n; i++) known[i] = b[s + i];
    } else {
      known.set(b.subarray(s, e));
    }
    cache.length = n;
    cache.text = text;
  }
  return text;
}

/** The method as a string, without decoding the common ones. */
function methodString(b: Uint8Array, s: number, e: number): string {
  const n = e - s;
  const c = b[s];
  if (n === 3) {
    if (c === 0x47 && b[s + 1] === 0x45 && b[s + 2] === 0x54) return "GET";
    if (c === 0x50 && b[s + 1] === 0x55 && b[s + 2] === 0x54) return "PUT";
  } else if (n === 4) {
    if (c === 0x50 && b[s + 1] === 0x4f && b[s + 2] === 0x53 && b[s + 3] === 0x54) return "POST";
    if (c === 0x48 && b[s + 1] === 0x45 && b[s + 2] === 0x41 && b[s + 3] === 0x44) return "HEAD";
  }
  return latin1(b, s, e);
}

function isMethod(b: Uint8Array, s: number, e: number, name: string): boolean {
  if (e - s !== name.length) return false;
  for (let i = 0; i < name.length; i++) if (b[s + i] !== name.charCodeAt(i)) return false;
  return true;
}

// ---------------------------------------------------------------------------
// Authority / Host grammar (RFC 3986 §3.2.2, RFC 9110 §7.2): uri-host [":" port]

/** `dec-octet "." dec-octet "." dec-octet "." dec-octet`, no leading zeros. */
function isIPv4(b: Uint8Array, s: number, e: number): boolean {
  let parts = 0;
  let i = s;
  while (parts < 4) {
    const start = i;
    let v = 0;
    while (i < e && i - start < 3 && b[i] >= 0x30 && b[i] <= 0x39) v = v * 10 + (b[i++] - 0x30);
    const len = i - start;
    if (len === 0 || v > 255 || (len > 1 && b[start] === 0x30)) return false;
    parts++;
    if (parts < 4) {
      if (i >= e || b[i] !== 0x2e) return false;
      i++;
    }
  }
  return i === e;
}

/** IPv6address (RFC 3986 §3.2.2): 8 groups, or fewer with one "::", optional IPv4 tail. */
function isIPv6(b: Uint8Array, s: number, e: number): boolean {
  let groups = 0;
  let elided = false;
  let i = s;
  if (i < e && b[i] === COLON) {
    if (i + 1 >= e || b[i + 1] !== COLON) return false;
    elided = true;
    i += 2;
  }
  while (i < e) {
    let j = i;
    while (j < e && HEX[b[j]] !== 0) j++;
    if (j < e && b[j] === 0x2e) {
      if (!isIPv4(b, i, e)) return false;
      groups += 2;
      i = e;
      break;
    }
    if (j === i || j - i > 4) return false;
    groups++;
    i = j;
    if (i === e) break;
    if (b[i] !== COLON) return false;
    i++;
    if (i < e && b[i] === COLON) {
      if (elided) return false;
      elided = true;
      i++;
    } else if (i === e) {
      return false;
    }
  }
  return elided ? groups <= 7 : groups === 8;
}

/** IP-literal contents: IPv6address or IPvFuture (`"v" 1*HEXDIG "." 1*( unreserved / sub-delims / ":" )`). */
function isIPLiteral(b: Uint8Array, s: number, e: number): boolean {
  if (s < e && (b[s] | 0x20) === 0x76) {
    let i = s + 1;
    while (i < e && HEX[b[i]] !== 0) i++;
    if (i === s + 1 || i >= e || b[i] !== 0x2e) return false;
    i++;
    if (i === e) return false;
    for (; i < e; i++) if (REGNAME[b[i]] === 0 && b[i] !== COLON) return false;
    return true;
  }
  return isIPv6(b, s, e);
}

/**
 * Validates `uri-host [":" port]` in `b[s, e)`. Returns the length of the
 * host part (0 for an empty reg-name), or -1 when invalid. Userinfo ("@"),
 * whitespace and "/" are not in the grammar, so they are refused.
 */
function hostLength(b: Uint8Array, s: number, e: number): number {
  let i = s;
  if (i < e && b[i] === 0x5b) {
    let close = i + 1;
    while (close < e && b[close] !== 0x5d) close++;
    if (close >= e || !isIPLiteral(b, i + 1, close)) return -1;
    i = close + 1;
  } else {
    while (i < e) {
      const c = b[i];
      if (REGNAME[c] === 1) i++;
      else if (c === 0x25 && i + 2 < e && HEX[b[i + 1]] !== 0 && HEX[b[i + 2]] !== 0) i += 3;
      else break;
    }
  }
  const hostLen = i - s;
  if (i === e) return hostLen;
  if (b[i] !== COLON) return -1;
  for (i++; i < e; i++) if (b[i] < 0x30 || b[i] > 0x39) return -1;
  return hostLen;
}

/** `text` as bytes, or undefined when it has a character none of these grammars allows (non-ASCII). */
function ascii(text: string): Uint8Array | undefined {
  const b = new Uint8Array(text.length);
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c > 0x7f) return undefined;
    b[i] = c;
  }
  return b;
}

/** `text` is a valid `uri-host [":" port]` with a non-empty host (as a Host header must be). */
export function isAuthority(text: string): boolean {
  const b = ascii(text);
  return b !== undefined && hostLength(b, 0, b.length) > 0;
}

/** `text` is a dotted-quad IPv4 address: each part 0-255, no leading zeros. */
export function isIPv4Address(text: string): boolean {
  const b = ascii(text);
  return b !== undefined && isIPv4(b, 0, b.length);
}

/**
 * `text` is an IPv6 address without brackets, as in an IP-literal, with an
 * optional `%zone`: the runtimes name link-local peers with one, and a listen
 * address may. (A Host header may not: isAuthority refuses it.)
 */
export function isIPv6Address(text: string): boolean {
  const percent = text.indexOf("%");
  if (percent !== -1 && !/^[\w.-]+$/.test(text.slice(percent + 1))) return false;
  const b = ascii(percent === -1 ? text : text.slice(0, percent));
  return b !== undefined && isIPv6(b, 0, b.length);
}

// ---------------------------------------------------------------------------
// The head

/** Index of the first field-line offset in a head's offset array. */
const FIELDS = 5;

/**
 * The `RequestHead` the parser produces. Only the method and the derived
 * facts are computed while parsing; the strings of the target, the authority
 * and the field lines are decoded from the head's bytes on first use (most
 * apps read few headers), then cached. Nothing else changes once it is made:
 * a repeated head is given out again, to any connection.
 */
class Head implements RequestHead {
  readonly method: string;
  readonly version: "1.0" | "1.1";
  readonly bodyKind: "none" | "length" | "chunked";
  readonly contentLength: number;
  readonly keepAlive: boolean;
  readonly expectContinue: boolean;
  readonly proxyHeaders: boolean;
  /** Holds the head's bytes; the parser never writes below its read position, so they stay as parsed. */
  readonly #buf: Uint8Array;
  /** Where the head starts in `#buf`. */
  readonly #base: number;
  /**
   * Offsets from `#base`: target start/end, authority start/end (absolute-form
   * authority or Host value; start -1 when neither), the head's length, then
   * (from index FIELDS) per field line the name start/end and value start/end.
   * Never written after the head is made: a repeated head shares it.
   */
  readonly #at: number[];
  readonly #absolute: boolean;
  #target: string | undefined;
  #authority: string | undefined;
  #path: string | undefined;
  #fields: string | undefined;

  constructor(
    method: string,
    version: "1.0" | "1.1",
    bodyKind: "none" | "length" | "chunked",
    contentLength: number,
    keepAlive: boolean,
    expectContinue: boolean,
    proxyHeaders: boolean,
    buf: Uint8Array,
    base: number,
    at: number[],
    absolute: boolean,
  ) {
    this.method = method;
    this.version = version;
    this.bodyKind = bodyKind;
    this.contentLength = contentLength;
    this.keepAlive = keepAlive;
    this.expectContinue = expectContinue;
    this.proxyHeaders = proxyHeaders;
    this.#buf = buf;
    this.#base = base;
    this.#at = at;
    this.#absolute = absolute;
    this.#target = undefined;
    this.#authority = undefined;
    this.#path = undefined;
    this.#fields = undefined;
  }

  /** The raw request-target as sent (latin-1 decoded, byte-exact). */
  get target(): string {
    if (this.#target === undefined) {
      const base = this.#base;
      this.#target = cachedLatin1(targetCache, this.#buf, base + this.#at[0], base + this.#at[1]);
    }
    return this.#target;
  }

  /** Absolute-form target's authority if any, else the Host value, else "". */
  get authority(): string {
    if (this.#authority === undefined) {
      const at = this.#at;
      const base = this.#base;
      this.#authority = at[2] < 0
        ? ""
        : cachedLatin1(authorityCache, this.#buf, base + at[2], base + at[3]);
    }
    return this.#authority;
  }

  /** Origin-form: the target; absolute-form: its path and query ("/" if empty); "*" for OPTIONS *. */
  get path(): string {
    if (this.#path === undefined) {
      if (!this.#absolute) {
        this.#path = this.target;
      } else {
        const ps = this.#base + this.#at[3];
        const pe = this.#base + this.#at[1];
        const b = this.#buf;
        this.#path = ps === pe
          ? "/"
          : b[ps] === SLASH
          ? latin1(b, ps, pe)
          : "/" + latin1(b, ps, pe);
      }
    }
    return this.#path;
  }

  /**
   * The field lines as sent (latin-1), which `headers` is made of: equal
   * texts give equal `headers`. Cheap when a client repeats its fields.
   */
  get fields(): string {
    if (this.#fields === undefined) {
      const base = this.#base;
      this.#fields = cachedLatin1(fieldsCache, this.#buf, base, base + this.#at[4]);
    }
    return this.#fields;
  }

  /**
   * Field lines in order: [name as sent, value with OWS trimmed]. Not kept:
   * a repeated head is this very object, and the list given to one request
   * (which its `Headers` may be made on, and change) is not the next one's.
   */
  get headers(): Array<[string, string]> {
    const at = this.#at;
    // One decode of the whole head, then slices: far cheaper than one
    // decode per name and value. The offsets are the text's indexes.
    const all = this.fields;
    const out: Array<[string, string]> = new Array((at.length - FIELDS) >> 2);
    for (let k = FIELDS; k < at.length; k += 4) {
      out[(k - FIELDS) >> 2] = [
        all.slice(at[k], at[k + 1]),
        all.slice(at[k + 2], at[k + 3]),
      ];
    }
    return out;
  }

  /** Value of the field named `lowerName` (ASCII case-insensitive); repeated lines joined with ", ". */
  get(lowerName: string): string | undefined {
    const b = this.#buf;
    const base = this.#base;
    const f = this.#at;
    const n = lowerName.length;
    let out: string | undefined;
    for (let k = FIELDS; k < f.length; k += 4) {
      const s = base + f[k];
      if (base + f[k + 1] - s !== n) continue;
      let j = 0;
      for (; j < n; j++) {
        let c = b[s + j];
        if (c >= 0x41 && c <= 0x5a) c |= 0x20;
        let d = lowerName.charCodeAt(j);
        if (d >= 0x41 && d <= 0x5a) d |= 0x20;
        if (c !== d) break;
      }
      if (j !== n) continue;
      const v = latin1(b, base + f[k + 2], base + f[k + 3]);
      out = out === undefined ? v : out + ", " + v;
    }
    return out;
  }
}

// ---------------------------------------------------------------------------
// The parser

const EMPTY = new Uint8Array(0);

/**
 * The last bodiless head parsed (by any parser), where its bytes lie, and
 * how many field lines it has. Clients repeat their requests (a load
 * balancer's health check, a poll, a benchmark): a head whose bytes are the
 * same is the same head, and is not parsed again. It keeps one buffer alive.
 */
let lastHead: Head | null = null;
let lastBuf: Uint8Array = EMPTY;
let lastBase = 0;
/** 0 while there is none: no head is shorter than its request line. */
let lastLength = 0;
let lastFieldCount = 0;
/**
 * The last head's bytes four at a time (as `word` reads them), made once it
 * was repeated: a repeat is then found with a quarter of the comparisons,
 * ~45 ns less a request on Bun. Not made for a head that is never repeated.
 */
let lastWords: Int32Array | null = null;

/** The four bytes at `i` as one number (little-endian, whatever the platform's order). */
function word(b: Uint8Array, i: number): number {
  return b[i] | (b[i + 1] << 8) | (b[i + 2] << 16) | (b[i + 3] << 24);
}

/** Whether the `n` bytes at `base` in `b` are those at `k` in `known`. */
function sameBytes(b: Uint8Array, base: number, known: Uint8Array, k: number, n: number): boolean {
  for (let i = 0; i < n; i++) {
    if (b[base + i] !== known[k + i]) return false;
  }
  return true;
}

const END_EVENT: ParseEvent = Object.freeze({ kind: "end" }) as ParseEvent;

// Phases
const P_HEAD = 0;
const P_END = 1; // head without body emitted; "end" is next
const P_LENGTH = 2;
const P_CHUNK_LINE = 3;
const P_CHUNK_DATA = 4;
const P_CHUNK_CR = 5;
const P_CHUNK_LF = 6;
const P_TRAILER = 7;
const P_ERROR = 8;

// Line results (a non-negative result is the index just past the line's LF)
const INCOMPLETE = -1;
const LINE_ERROR = -2;
const HEAD_DONE = -3;
/** A line whose first byte already rules it out: no need to wait for its end. */
const LINE_ERROR_NOW = -4;

/**
 * Incremental HTTP/1.1 request parser. Push bytes in pieces of any size, then
 * call `next()` until it returns null. Pushed chunks become the parser's: body
 * events are views of them.
 */
export class RequestParser {
  /**
   * Kept for the connection, which reads no parser state into it: when the
   * head being received started (ms), or 0. Held here because a connection
   * holds a parser exactly while it may be receiving a head, and an idle
   * connection's every field counts. Zero in a parser from the pool.
   */
  headStartedAt = 0;

  private readonly maxHead: number;
  private readonly maxBody: number;

  // Bytes: `buf` is the chunk being read (exactly its valid bytes), `pos` the
  // first unconsumed byte; later chunks wait in `queue`.
  private buf: Uint8Array = EMPTY;
  private pos = 0;
  private queue: Uint8Array[] = [];
  private qHead = 0;
  private queued = 0;
  /** Storage behind `buf` when `buf` is an accumulation we may append to. */
  private acc: Uint8Array | null = null;

  private phase = P_HEAD;
  private failure: ParseEvent | null = null;

  // Head state. Offsets are relative to `pos` (the head's first byte), so
  // moving the head into an accumulation buffer does not disturb them.
  private skipped = 0;
  private lineRel = 0;
  private waitLF = false;
  private scanRel = 0;
  private gotRequestLine = false;
  private lineErr: ParseError | null = null;
  private mStart = 0;
  private mEnd = 0;
  private tStart = 0;
  private tEnd = 0;
  private minor = 1;
  private aStart = -1; // absolute-form authority, -1 when not absolute-form
  private aEnd = -1;
  /** Four offsets per field line: name start and end, value start and end. */
  private fields: number[] = [];
  private nFields = 0;
  private readonly maxFields: number;
  private hostCount = 0;
  private hostStart = 0;
  private hostEnd = 0;
  private clCount = 0;
  private clValue = 0;
  private teLines = 0;
  private teChunked = 0;
  private teOther = 0;
  private teLastChunked = false;
  private connClose = false;
  private connKeepAlive = false;
  private expect100 = false;
  private proxyHeaders = false;

  // Body state.
  private remaining = 0;
  private bodyTotal = 0;
  /** Chunk-line bytes beyond `PLAIN_CHUNK_LINE`, over the body. */
  private chunkExtBytes = 0;
  private trailerBytes = 0;

  /** Creates a parser enforcing `limits`. */
  constructor(limits: ParserLimits) {
    this.maxHead = limits.maxRequestHeaderSize;
    this.maxBody = limits.maxRequestBodySize;
    this.maxFields = limits.maxRequestHeaders ?? DEFAULT_MAX_REQUEST_HEADERS;
  }

  /** Hands bytes to the parser (they are not parsed until next() is called). */
  push(chunk: Uint8Array): void {
    if (this.phase === P_ERROR || chunk.length === 0) return;
    this.queue.push(chunk);
    this.queued += chunk.length;
  }

  /**
   * "idle": no bytes of a new request buffered (nor empty lines before it,
   * which start its head's clock too); "head": a head is partly received;
   * "body": reading a body; "error".
   */
  get state(): "idle" | "head" | "body" | "error" {
    switch (this.phase) {
      case P_HEAD:
        return this.atRest ? "idle" : "head";
      case P_ERROR:
        return "error";
      default:
        return "body";
    }
  }

  /**
   * Nothing of a next request has arrived (not even empty lines), so the
   * parser holds no state of this connection and may serve another.
   */
  get atRest(): boolean {
    return this.phase === P_HEAD && this.pos === this.buf.length && this.queued === 0 &&
      !this.gotRequestLine && this.skipped === 0;
  }

  /** Bytes pushed but not yet consumed by next(). */
  get buffered(): number {
    return this.buf.length - this.pos + this.queued;
  }

  /** Parses as far as the buffered bytes allow and returns the next event, or null when more bytes are needed. */
  next(): ParseEvent | null {
    switch (this.phase) {
      case P_HEAD:
        return this.head();
      case P_END:
        return this.end();
      case P_LENGTH:
        return this.lengthBody();
      case P_ERROR:
        return this.failure;
      default:
        return this.chunked();
    }
  }

  // -------------------------------------------------------------------------
  // Buffer management

  /**
   * Makes more bytes available after `buf`'s end, keeping `buf[pos..]`.
   * Copies at most `room` bytes of the next chunk (what the line being read
   * may still need); the rest of that chunk stays queued. Returns false when
   * nothing is queued.
   */
  private pull(room: number): boolean {
    if (this.qHead === this.queue.length) return false;
    const next = this.queue[this.qHead];
    const keep = this.buf.length - this.pos;
    if (keep === 0) {
      // Nothing to carry over: read the next chunk in place, no copy.
      this.queue[this.qHead++] = EMPTY;
      this.queued -= next.length;
      this.buf = next;
      this.pos = 0;
      this.acc = null;
      this.compactQueue();
      return true;
    }
    const take = next.length <= room ? next.length : room;
    const acc = this.acc;
    if (acc !== null && this.buf.length + take <= acc.length) {
      // Append behind the accumulation; bytes already handed out lie below it.
      acc.set(take === next.length ? next : next.subarray(0, take), this.buf.length);
      this.buf = acc.subarray(0, this.buf.length + take);
    } else {
      const need = keep + take;
      const most = keep + room;
      let cap = need * 2 > 1024 ? need * 2 : 1024;
      if (cap > most) cap = most; // most >= need: take <= room
      const fresh = new Uint8Array(cap);
      fresh.set(this.buf.subarray(this.pos));
      fresh.set(take === next.length ? next : next.subarray(0, take), keep);
      this.acc = fresh;
      this.buf = fresh.subarray(0, need);
      this.pos = 0;
    }
    if (take === next.length) {
      this.queue[this.qHead++] = EMPTY;
      this.compactQueue();
    } else {
      this.queue[this.qHead] = next.subarray(take);
    }
    this.queued -= take;
    return true;
  }

  /**
   * A message is complete. When no byte of the next one has arrived, the
   * last chunk is let go, so that an idle keep-alive connection holds no
   * buffer (the head handed out keeps the bytes it needs).
   */
  private end(): ParseEvent {
    this.phase = P_HEAD;
    if (this.pos === this.buf.length) {
      this.buf = EMPTY;
      this.pos = 0;
      this.acc = null;
    }
    return END_EVENT;
  }

  private compactQueue(): void {
    if (this.qHead === this.queue.length) {
      // pop() is inlined; setting length calls into the runtime.
      while (this.queue.length > 0) this.queue.pop();
      this.qHead = 0;
    } else if (this.qHead > 32) {
      this.queue = this.queue.slice(this.qHead);
      this.qHead = 0;
    }
  }

  private fail(error: ParseError): ParseEvent {
    const event: ParseEvent = { kind: "error", error };
    this.failure = event;
    this.phase = P_ERROR;
    this.buf = EMPTY;
    this.pos = 0;
    this.queue = [];
    this.qHead = 0;
    this.queued = 0;
    this.acc = null;
    return event;
  }

  private tooLargeHead(): ParseEvent {
    return this.fail(parseError(431, "exceeds max_header of " + this.maxHead));
  }

  private resetHead(): void {
    this.skipped = 0;
    this.lineRel = 0;
    this.waitLF = false;
    this.scanRel = 0;
    this.gotRequestLine = false;
    this.lineErr = null;
    this.aStart = -1;
    this.aEnd = -1;
    this.nFields = 0;
    // A pooled parser keeps no large offset list from one unusual request.
    if (this.fields.length > 4 * 128) this.fields = [];
    this.hostCount = 0;
    this.clCount = 0;
    this.clValue = 0;
    this.teLines = 0;
    this.teChunked = 0;
    this.teOther = 0;
    this.teLastChunked = false;
    this.connClose = false;
    this.connKeepAlive = false;
    this.expect100 = false;
    this.proxyHeaders = false;
  }

  // -------------------------------------------------------------------------
  // Head

  private head(): ParseEvent | null {
    for (;;) {
      const b = this.buf;
      const end = b.length;
      let base = this.pos;
      if (
        lastLength > 0 && lastLength <= end - base && this.lineRel === 0 && !this.waitLF &&
        this.skipped === 0
      ) {
        const head = this.repeatedHead(b, base);
        if (head !== null) return head;
      }
      // An LF at index >= limitEnd would make the head longer than allowed.
      let limitEnd = base + this.maxHead - this.skipped;
      if (this.waitLF) {
        // The current line was cut short: only look for its end.
        const to = end < limitEnd ? end : limitEnd;
        if (findLF(b, base + this.scanRel, to) < 0) {
          if (end >= limitEnd) return this.tooLargeHead();
          this.scanRel = end - base;
          if (!this.pull(limitEnd - end)) return null;
          continue;
        }
        this.waitLF = false;
      }
      let ls = base + this.lineRel;
      for (;;) {
        let r: number;
        if (this.gotRequestLine) {
          r = this.headerLine(b, ls, base);
        } else if (ls + 1 < end && b[ls] === CR && b[ls + 1] === LF) {
          // RFC 9112 §2.2: ignore empty lines before the request line; they
          // still count toward the header limit.
          this.skipped += 2;
          if (this.skipped > this.maxHead) return this.tooLargeHead();
          base = this.pos = ls + 2;
          ls = base;
          limitEnd = base + this.maxHead - this.skipped;
          continue;
        } else {
          r = this.requestLine(b, ls, base);
        }
        if (r >= 0) {
          if (r > limitEnd) return this.tooLargeHead();
          ls = r;
          continue;
        }
        if (r === HEAD_DONE) {
          if (ls + 2 > limitEnd) return this.tooLargeHead();
          return this.finishHead(b, base, ls + 2);
        }
        this.lineRel = ls - base;
        if (r === LINE_ERROR_NOW) return this.fail(this.lineErr!);
        if (r === LINE_ERROR) {
          // Decide only on whole lines: report the error once the line's LF
          // is known to lie within the limit.
          const to = end < limitEnd ? end : limitEnd;
          if (findLF(b, ls, to) >= 0) return this.fail(this.lineErr!);
          if (end >= limitEnd) return this.tooLargeHead();
        } else if (end >= limitEnd) {
          return this.tooLargeHead();
        }
        // INCOMPLETE guarantees [ls, end) holds no LF; so does a failed
        // search. With nothing of the line buffered there is nothing to skip.
        this.scanRel = end - base;
        this.waitLF = end > ls;
        break;
      }
      if (!this.pull(limitEnd - end)) return null;
    }
  }

  /**
   * The head at `base` when its bytes are those of the last bodiless head
   * parsed (see `lastHead`), else null. Those bytes passed every check, and
   * the outcome depends on nothing else, but for the limits: this parser's
   * may be lower than the one that parsed them.
   */
  private repeatedHead(b: Uint8Array, base: number): ParseEvent | null {
    const n = lastLength;
    if (n > this.maxHead || lastFieldCount > this.maxFields) return null;
    const known = lastBuf;
    const k = lastBase;
    const words = lastWords;
    if (words === null) {
      if (!sameBytes(b, base, known, k, n)) return null;
      const made = new Int32Array(n >> 2);
      for (let w = 0; w < made.length; w++) made[w] = word(known, k + 4 * w);
      lastWords = made;
    } else {
      for (let w = 0, p = base; w < words.length; w++, p += 4) {
        if (word(b, p) !== words[w]) return null;
      }
      const done = words.length * 4;
      if (!sameBytes(b, base + done, known, k + done, n - done)) return null;
    }
    // The same bytes make the same head: the last one is given again (all it
    // keeps are the strings decoded from those bytes, and the buffer they lie in).
    this.pos = base + n;
    this.phase = P_END;
    return { kind: "head", head: lastHead! };
  }

  private lineError(status: number, detail: string): number {
    this.lineErr = parseError(status, detail);
    return LINE_ERROR;
  }

  /**
   * Checks the request line at `ls`: `method SP request-target SP HTTP-version CRLF`.
   * Returns the index past its LF, INCOMPLETE (every byte so far is a valid
   * prefix) or LINE_ERROR.
   */
  private requestLine(b: Uint8Array, ls: number, base: number): number {
    const len = b.length;
    let i = ls;
    while (i < len && TCHAR[b[i]] === 1) i++;
    if (i >= len) return INCOMPLETE;
    let c = b[i];
    if (c !== SP || i === ls) {
      if (c === CR) {
        if (i + 1 >= len) return INCOMPLETE;
        if (b[i + 1] !== LF) return this.lineError(400, "Bare CR in request line");
      }
      if (c === LF) return this.lineError(400, "Bare LF in request line");
      if (i === ls && c !== CR) {
        // Not HTTP at all (a TLS handshake sent to a plain-HTTP port, say):
        // answer at once, not when an LF, the size limit or the timeout comes.
        this.lineError(400, "Method is invalid");
        return LINE_ERROR_NOW;
      }
      if (c === CR || c === HTAB || c === SP) return this.lineError(400, "Start line is invalid");
      return this.lineError(400, "Method is invalid");
    }
    const mEnd = i;
    const ts = i + 1;
    i = ts;
    while (i < len && TARGET[b[i]] === 1) i++;
    if (i >= len) return INCOMPLETE;
    c = b[i];
    if (c !== SP || i === ts) {
      if (c === CR && i + 1 >= len) return INCOMPLETE;
      if (c === CR && b[i + 1] !== LF) return this.lineError(400, "Bare CR in request line");
      if (c === LF) return this.lineError(400, "Bare LF in request line");
      if (c === CR || c === SP || c === HTAB || i === ts) {
        return this.lineError(400, "Start line is invalid");
      }
      return this.lineError(400, "Request target contains an invalid byte");
    }
    const te = i;
    // HTTP-version = "HTTP" "/" DIGIT "." DIGIT, then CRLF; checked byte by
    // byte so that a cut line is INCOMPLETE only while it is a valid prefix.
    const k = te + 1;
    for (let j = 0; j < 10; j++) {
      const p = k + j;
      if (p >= len) return INCOMPLETE;
      const x = b[p];
      let ok: boolean;
      switch (j) {
        case 0:
          ok = x === 0x48;
          break;
        case 1:
        case 2:
          ok = x === 0x54;
          break;
        case 3:
          ok = x === 0x50;
          break;
        case 4:
          ok = x === SLASH;
          break;
        case 6:
          ok = x === 0x2e;
          break;
        case 5:
        case 7:
          ok = x >= 0x30 && x <= 0x39;
          break;
        case 8:
          ok = x === CR;
          break;
        default:
          ok = x === LF;
      }
      if (!ok) {
        if (x === LF) return this.lineError(400, "Bare LF in request line");
        if (j === 9) return this.lineError(400, "Bare CR in request line");
        return this.lineError(400, "HTTP version is invalid");
      }
    }
    if (b[k + 5] !== 0x31) return this.lineError(505, "Only HTTP/1.x is supported");
    this.minor = b[k + 7] === 0x30 ? 0 : 1;
    // Methods are case-sensitive (RFC 9110 §9.1), but fetch's Request
    // upper-cases "get" or "Put", and Bun turns methods it does not know
    // into GET: refused like waitress does, the app never sees a method
    // other than the one on the wire. (A token: named, as waitress does,
    // only when short, so that the page does not reflect a long one.)
    for (let j = ls; j < mEnd; j++) {
      if (b[j] >= 0x61 && b[j] <= 0x7a) {
        return this.lineError(
          400,
          mEnd - ls <= MAX_ECHOED_METHOD
            ? `Malformed HTTP method "${latin1(b, ls, mEnd)}"`
            : "Malformed HTTP method (methods are upper-case)",
        );
      }
    }
    // The methods fetch forbids in a Request (Bun alone allows two of them).
    if (
      isMethod(b, ls, mEnd, "CONNECT") || isMethod(b, ls, mEnd, "TRACE") ||
      isMethod(b, ls, mEnd, "TRACK")
    ) {
      return this.lineError(501, `${latin1(b, ls, mEnd)} is not supported`);
    }
    if (te - ts > MAX_TARGET_LENGTH) {
      return this.lineError(414, "Request target exceeds " + MAX_TARGET_LENGTH + " bytes");
    }
    // Target forms (RFC 9112 §3.2): origin-form, absolute-form, and
    // asterisk-form for OPTIONS only. authority-form is CONNECT's, refused above.
    const first = b[ts];
    if (first === 0x2a && te - ts === 1) {
      if (!isMethod(b, ls, mEnd, "OPTIONS")) {
        return this.lineError(400, "Asterisk-form target is only allowed with OPTIONS");
      }
    } else if (first !== SLASH) {
      const r = this.absoluteForm(b, ts, te, base);
      if (r !== null) return this.lineError(400, r);
    }
    this.mStart = ls - base;
    this.mEnd = mEnd - base;
    this.tStart = ts - base;
    this.tEnd = te - base;
    this.gotRequestLine = true;
    return k + 10;
  }

  /** Checks an absolute-form target (`http[s]://authority[path]`); returns an error detail or null. */
  private absoluteForm(b: Uint8Array, ts: number, te: number, base: number): string | null {
    let i = ts;
    const c = b[i] | 0x20;
    if (c < 0x61 || c > 0x7a) return "Request target is invalid";
    i++;
    while (i < te && SCHEME[b[i]] === 1) i++;
    if (i + 3 > te || b[i] !== COLON || b[i + 1] !== SLASH || b[i + 2] !== SLASH) {
      return "Request target is invalid";
    }
    const schemeLen = i - ts;
    if (!(schemeLen === 4 && eqLit(b, ts, L_HTTP)) && !(schemeLen === 5 && eqLit(b, ts, L_HTTPS))) {
      return "Absolute-form target must use http or https";
    }
    const as = i + 3;
    let ae = as;
    while (ae < te && b[ae] !== SLASH && b[ae] !== 0x3f && b[ae] !== 0x23) ae++;
    if (hostLength(b, as, ae) <= 0) return "Request target authority is invalid";
    this.aStart = as - base;
    this.aEnd = ae - base;
    return null;
  }

  /**
   * Checks one header line at `ls` and records it. Returns the index past its
   * LF, HEAD_DONE for the empty line that ends the head, INCOMPLETE or
   * LINE_ERROR.
   */
  private headerLine(b: Uint8Array, ls: number, base: number): number {
    const len = b.length;
    if (ls >= len) return INCOMPLETE;
    let c = b[ls];
    if (c === CR) {
      if (ls + 1 >= len) return INCOMPLETE;
      if (b[ls + 1] === LF) return HEAD_DONE;
      return this.lineError(400, "Bare CR in header section");
    }
    if (c === SP || c === HTAB) {
      return this.lineError(400, "Obsolete line folding is not allowed");
    }
    let i = ls;
    while (i < len && TCHAR[b[i]] === 1) i++;
    if (i >= len) return INCOMPLETE;
    c = b[i];
    if (c !== COLON || i === ls) {
      if (c === CR) {
        if (i + 1 >= len) return INCOMPLETE;
        if (b[i + 1] !== LF) return this.lineError(400, "Bare CR in header section");
      }
      if (c === LF) return this.lineError(400, "Bare LF in header section");
      if (i === ls && c === COLON) return this.lineError(400, "Header name is empty");
      if ((c === SP || c === HTAB) && i > ls) {
        return this.lineError(400, "Whitespace between header name and colon");
      }
      if (c === CR) return this.lineError(400, "Header line has no colon");
      return this.lineError(400, "Header name is invalid");
    }
    const ne = i;
    i++;
    while (i < len && (b[i] === SP || b[i] === HTAB)) i++;
    const vs = i;
    while (i < len && VALUE[b[i]] === 1) i++;
    if (i >= len) return INCOMPLETE;
    c = b[i];
    if (c !== CR) {
      if (c === LF) return this.lineError(400, "Bare LF in header section");
      return this.lineError(400, "Header value contains a control character");
    }
    if (i + 1 >= len) return INCOMPLETE;
    if (b[i + 1] !== LF) return this.lineError(400, "Bare CR in header section");
    let ve = i;
    while (ve > vs && (b[ve - 1] === SP || b[ve - 1] === HTAB)) ve--;

    if (this.nFields === this.maxFields) {
      return this.lineError(431, `more than ${this.maxFields} header fields (maxRequestHeaders)`);
    }
    const f = this.fields;
    let n = this.nFields * 4;
    f[n++] = ls - base;
    f[n++] = ne - base;
    f[n++] = vs - base;
    f[n] = ve - base;
    this.nFields++;

    // The fields that decide framing and persistence are read here, from bytes.
    switch (ne - ls) {
      case 4:
        if (eqLit(b, ls, L_HOST)) {
          if (++this.hostCount > 1) return this.lineError(400, "More than one Host header");
          if (hostLength(b, vs, ve) < 0) return this.lineError(400, "Host header is invalid");
          this.hostStart = vs - base;
          this.hostEnd = ve - base;
        }
        break;
      case 6:
        if (eqLit(b, ls, L_EXPECT) && listHas(b, vs, ve, L_100_CONTINUE)) this.expect100 = true;
        break;
      case 10:
        if (eqLit(b, ls, L_CONNECTION)) {
          if (listHas(b, vs, ve, L_CLOSE)) this.connClose = true;
          if (listHas(b, vs, ve, L_KEEP_ALIVE)) this.connKeepAlive = true;
        }
        break;
      case 9:
        if (eqLit(b, ls, L_FORWARDED)) this.proxyHeaders = true;
        break;
      case 14:
        if (eqLit(b, ls, L_CONTENT_LENGTH)) return this.contentLength(b, vs, ve, i + 2);
        if (eqLit(b, ls, L_X_FORWARDED)) this.proxyHeaders = true;
        break;
      case 15:
      case 16:
        if (eqLit(b, ls, L_X_FORWARDED)) this.proxyHeaders = true;
        break;
      case 17:
        if (eqLit(b, ls, L_TRANSFER_ENCODING)) return this.transferCodings(b, vs, ve, i + 2);
        if (eqLit(b, ls, L_X_FORWARDED)) this.proxyHeaders = true;
        break;
    }
    return i + 2;
  }

  /** `Content-Length = 1*DIGIT`, exact; repeated lines must agree. */
  private contentLength(b: Uint8Array, vs: number, ve: number, next: number): number {
    if (vs === ve) return this.lineError(400, "Content-Length is invalid");
    let v = 0;
    for (let i = vs; i < ve; i++) {
      const d = b[i] - 0x30;
      if (d < 0 || d > 9) return this.lineError(400, "Content-Length is invalid");
      v = v * 10 + d;
      // Past 2^53 no longer exact, and over any maxRequestBodySize (as in waitress).
      if (v > Number.MAX_SAFE_INTEGER) {
        return this.lineError(413, "exceeds max_body of " + this.maxBody);
      }
    }
    if (this.clCount > 0 && v !== this.clValue) {
      return this.lineError(400, "Content-Length values differ");
    }
    this.clCount++;
    this.clValue = v;
    return next;
  }

  /**
   * Records the transfer codings of one Transfer-Encoding line, in order.
   * An empty list element is refused, where RFC 9110 §5.6.1 has a recipient
   * ignore it: parsers that frame `chunked,` otherwise (llhttp refuses it,
   * hyper does not see chunked last, a lenient one reads to the close) would
   * disagree with this one on where the body ends.
   */
  private transferCodings(b: Uint8Array, vs: number, ve: number, next: number): number {
    this.teLines++;
    let a = vs;
    for (;;) {
      let z = a;
      while (z < ve && b[z] !== COMMA) z++;
      let x = a;
      let y = z;
      while (x < y && (b[x] === SP || b[x] === HTAB)) x++;
      while (y > x && (b[y - 1] === SP || b[y - 1] === HTAB)) y--;
      if (y === x) return this.lineError(400, "Transfer-Encoding has an empty list element");
      if (y - x === 7 && eqLit(b, x, L_CHUNKED)) {
        this.teChunked++;
        this.teLastChunked = true;
      } else {
        this.teOther++;
        this.teLastChunked = false;
      }
      if (z === ve) return next;
      a = z + 1;
    }
  }

  /** Whole-head checks, then the head event; `headEnd` is just past the final CRLF. */
  private finishHead(b: Uint8Array, base: number, headEnd: number): ParseEvent {
    const minor = this.minor;
    if (minor === 1 && this.hostCount === 0) {
      return this.fail(parseError(400, "HTTP/1.1 request without Host header"));
    }
    let bodyKind: "none" | "length" | "chunked" = "none";
    let contentLength = 0;
    if (this.teLines > 0) {
      if (minor === 0) {
        return this.fail(parseError(400, "Transfer-Encoding is not allowed in HTTP/1.0"));
      }
      if (this.clCount > 0) {
        return this.fail(parseError(400, "Both Content-Length and Transfer-Encoding"));
      }
      if (!this.teLastChunked) {
        return this.fail(parseError(400, "Transfer-Encoding must end with chunked"));
      }
      if (this.teChunked > 1) {
        return this.fail(parseError(400, "Transfer-Encoding lists chunked more than once"));
      }
      if (this.teOther > 0) {
        return this.fail(parseError(501, "Transfer-Encoding requested is not supported"));
      }
      bodyKind = "chunked";
    } else if (this.clCount > 0) {
      if (this.clValue > this.maxBody) {
        return this.fail(parseError(413, "exceeds max_body of " + this.maxBody));
      }
      bodyKind = "length";
      contentLength = this.clValue;
    }

    const nf = this.nFields * 4;
    const at: number[] = new Array(FIELDS + nf);
    at[0] = this.tStart;
    at[1] = this.tEnd;
    const absolute = this.aStart >= 0;
    if (absolute) {
      at[2] = this.aStart;
      at[3] = this.aEnd;
    } else if (this.hostCount > 0) {
      at[2] = this.hostStart;
      at[3] = this.hostEnd;
    } else {
      at[2] = -1;
      at[3] = -1;
    }
    at[4] = headEnd - base;
    const f = this.fields;
    for (let k = 0; k < nf; k++) at[FIELDS + k] = f[k];
    const hasBody = bodyKind === "chunked" || contentLength > 0;
    const head = new Head(
      methodString(b, base + this.mStart, base + this.mEnd),
      minor === 0 ? "1.0" : "1.1",
      bodyKind,
      contentLength,
      minor === 1 ? !this.connClose : this.connKeepAlive && !this.connClose,
      minor === 1 && hasBody && this.expect100,
      this.proxyHeaders,
      b,
      base,
      at,
      absolute,
    );
    if (!hasBody) {
      lastHead = head;
      lastBuf = b;
      lastBase = base;
      lastLength = headEnd - base;
      lastFieldCount = this.nFields;
      lastWords = null;
    }

    this.pos = headEnd;
    this.resetHead();
    if (bodyKind === "chunked") {
      this.phase = P_CHUNK_LINE;
      this.bodyTotal = 0;
      this.chunkExtBytes = 0;
    } else if (contentLength > 0) {
      this.phase = P_LENGTH;
      this.remaining = contentLength;
    } else {
      this.phase = P_END;
    }
    return { kind: "head", head };
  }

  // -------------------------------------------------------------------------
  // Bodies

  /** An event for up to `this.remaining` body bytes, or null when none are buffered. */
  private bodyEvent(): ParseEvent | null {
    if (this.pos === this.buf.length && !this.pull(0)) return null;
    const start = this.pos;
    const avail = this.buf.length - start;
    const n = avail < this.remaining ? avail : this.remaining;
    const data = this.buf.subarray(start, start + n);
    this.remaining -= n;
    // A pushed chunk read in place and all body: let go of it, so that the
    // app may take its buffer (a byte stream's enqueue detaches it).
    const whole = start === 0 && n === avail && this.acc === null;
    if (whole) this.buf = EMPTY;
    this.pos = whole ? 0 : start + n;
    return { kind: "body", data, whole };
  }

  private lengthBody(): ParseEvent | null {
    if (this.remaining === 0) return this.end();
    return this.bodyEvent();
  }

  /**
   * Finds the LF ending the line at `pos`, which may hold at most `cap` bytes
   * with its CRLF. Returns the LF's index, INCOMPLETE, or LINE_ERROR
   * (`lineErr` set; `tooLong` is the error for an over-long line).
   */
  private bodyLine(cap: number, tooLong: ParseError): number {
    for (;;) {
      const b = this.buf;
      const end = b.length;
      const limitEnd = this.pos + cap;
      const q = findLF(b, this.pos + this.scanRel, end < limitEnd ? end : limitEnd);
      if (q >= 0) {
        this.scanRel = 0;
        if (q === this.pos || b[q - 1] !== CR) {
          return this.lineError(400, "Bare LF in chunked body");
        }
        return q;
      }
      if (end >= limitEnd) {
        this.lineErr = tooLong;
        return LINE_ERROR;
      }
      this.scanRel = end - this.pos;
      if (!this.pull(limitEnd - end)) return INCOMPLETE;
    }
  }

  private chunked(): ParseEvent | null {
    for (;;) {
      switch (this.phase) {
        case P_CHUNK_LINE: {
          const lf = this.bodyLine(
            MAX_CHUNK_LINE_LENGTH + 2,
            parseError(400, "Chunk line exceeds " + MAX_CHUNK_LINE_LENGTH + " bytes"),
          );
          if (lf === INCOMPLETE) return null;
          if (lf === LINE_ERROR) return this.fail(this.lineErr!);
          const size = parseChunkLine(this.buf, this.pos, lf - 1);
          if (size < 0) {
            if (size === CHUNK_SIZE_INVALID) {
              return this.fail(parseError(400, "Invalid chunk size"));
            }
            if (size === CHUNK_EXT_INVALID) {
              return this.fail(parseError(400, "Invalid chunk extension"));
            }
            if (size === CHUNK_SIZE_TOO_LARGE) {
              return this.fail(parseError(413, "exceeds max_body of " + this.maxBody));
            }
          }
          const extra = lf + 1 - this.pos - PLAIN_CHUNK_LINE;
          if (extra > 0 && (this.chunkExtBytes += extra) > this.maxHead) {
            return this.fail(
              parseError(400, "Chunk extensions exceed max_header of " + this.maxHead),
            );
          }
          this.pos = lf + 1;
          if (size === 0) {
            this.phase = P_TRAILER;
            this.trailerBytes = 0;
            break;
          }
          if (size > this.maxBody - this.bodyTotal) {
            return this.fail(parseError(413, "exceeds max_body of " + this.maxBody));
          }
          this.bodyTotal += size;
          this.remaining = size;
          this.phase = P_CHUNK_DATA;
          break;
        }
        case P_CHUNK_DATA: {
          const event = this.bodyEvent();
          if (event === null) return null;
          if (this.remaining === 0) this.phase = P_CHUNK_CR;
          return event;
        }
        case P_CHUNK_CR:
        case P_CHUNK_LF: {
          if (this.pos === this.buf.length && !this.pull(0)) return null;
          const want = this.phase === P_CHUNK_CR ? CR : LF;
          if (this.buf[this.pos] !== want) {
            return this.fail(parseError(400, "Chunk not properly terminated"));
          }
          this.pos++;
          this.phase = this.phase === P_CHUNK_CR ? P_CHUNK_LF : P_CHUNK_LINE;
          break;
        }
        case P_TRAILER: {
          const lf = this.bodyLine(
            this.maxHead - this.trailerBytes,
            parseError(431, "trailers exceed max_header of " + this.maxHead),
          );
          if (lf === INCOMPLETE) return null;
          if (lf === LINE_ERROR) return this.fail(this.lineErr!);
          const ls = this.pos;
          this.pos = lf + 1;
          if (lf - 1 === ls) return this.end();
          // Trailer fields are checked like header fields and then dropped:
          // never merged into the head (RFC 9110 §6.5.1).
          const detail = checkFieldLine(this.buf, ls, lf - 1);
          if (detail !== null) return this.fail(parseError(400, detail));
          this.trailerBytes += lf + 1 - ls;
          break;
        }
        default:
          return this.failure;
      }
    }
  }
}

/** Checks `field-name ":" OWS field-value OWS` in `b[s, e)` (CRLF excluded); returns an error detail or null. */
function checkFieldLine(b: Uint8Array, s: number, e: number): string | null {
  const c = b[s];
  if (c === SP || c === HTAB) return "Obsolete line folding is not allowed";
  let i = s;
  while (i < e && TCHAR[b[i]] === 1) i++;
  if (i === s || i === e || b[i] !== COLON) return "Trailer field is invalid";
  for (i++; i < e; i++) {
    if (VALUE[b[i]] === 0) return "Trailer field contains a control character";
  }
  return null;
}

/**
 * Parsers kept for reuse, so that an idle keep-alive connection holds none:
 * a connection takes one when bytes arrive and gives it back at rest.
 */
export class ParserPool {
  readonly #limits: ParserLimits;
  readonly #free: RequestParser[] = [];
  readonly #max: number;

  /** A pool of parsers enforcing `limits`, keeping at most `max` spare ones. */
  constructor(limits: ParserLimits, max = 1024) {
    this.#limits = limits;
    this.#max = max;
  }

  /** A parser at rest. */
  take(): RequestParser {
    return this.#free.pop() ?? new RequestParser(this.#limits);
  }

  /** Takes back a parser that is `atRest` (one that is not is dropped). */
  give(parser: RequestParser): void {
    if (parser.atRest && this.#free.length < this.#max) {
      parser.headStartedAt = 0;
      this.#free.push(parser);
    }
  }
}
