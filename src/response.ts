/**
 * Response serialization: the status line and header block, chunked framing,
 * and waitress-style error pages. Pure functions over strings and bytes.
 * @module
 */
import { httpDate } from "./http_date.ts";
import { allocate } from "./slab.ts";
import { reasonPhrase } from "./status.ts";

/**
 * Response headers the server owns: an app's values are dropped, never sent.
 * (`name` is lower-case; by length first, cheaper per field than a Set.)
 * `Upgrade` is not one: it is sent (a 426 must carry it), with the
 * `upgrade` connection option it needs.
 */
function isHopByHop(name: string): boolean {
  switch (name.length) {
    case 2:
      return name === "te";
    case 7:
      return name === "trailer";
    case 10:
      return name === "connection" || name === "keep-alive";
    case 16:
      return name === "proxy-connection";
    case 17:
      return name === "transfer-encoding";
  }
  return false;
}

/** How the body of a response is delimited on the wire. */
export type Framing = "length" | "chunked" | "close" | "none";

/** What the header block says about the response (shared by equal lists: never changed). */
export interface HeadFacts {
  /** The app's valid `Content-Length`, or -1. */
  readonly appLength: number;
  /** The app sent `Connection: close`. */
  readonly appClose: boolean;
  /** The app set `Date`. */
  readonly hasDate: boolean;
  /** The app set `Server`. */
  readonly hasServer: boolean;
  /** The app set `Content-Type`. */
  readonly hasType: boolean;
  /** The app set `Upgrade` (sent, with `Connection: upgrade`). */
  readonly hasUpgrade: boolean;
  /** Fields to send (`name, value, …`), hop-by-hop and framing removed. */
  readonly fields: readonly string[];
  /** The name of a field whose value cannot be sent (see `isFieldText`), or null. */
  readonly invalid: string | null;
}

/**
 * The last list inspected and its facts: an app's responses mostly carry
 * the same fields (none at all, or the same content type), and comparing
 * them costs less than reading them again.
 */
let lastFields: string[] = [];
let lastFacts: HeadFacts | null = null;

/**
 * Reads a Response's fields once (a flat `name, value, …` list with
 * lower-case names, as `responseFields` gives it): what to send and what
 * they imply. Equal lists give the same facts.
 */
export function inspectHeaders(fields: string[]): HeadFacts {
  if (lastFacts !== null && sameStrings(fields, lastFields)) return lastFacts;
  let appLength = -1;
  let hasDate = false;
  let hasServer = false;
  let hasType = false;
  let hasUpgrade = false;
  let invalid: string | null = null;
  let kept: string[] | null = null;
  const options = connectionOptions(fields);
  const appClose = options !== null && options.includes("close");
  for (let i = 0; i < fields.length; i += 2) {
    const name = fields[i];
    const value = fields[i + 1];
    if (invalid === null && !isFieldText(value)) invalid = name;
    let send = false;
    if (isHopByHop(name) || (options?.includes(name) && !isServerOption(name))) {
      // Dropped: the connection is the server's, and so is a field the app's
      // Connection names (sent without that Connection, a proxy would pass
      // it on).
    } else if (name === "content-length") {
      appLength = parseLength(value); // the server writes it itself, once
    } else {
      if (name === "date") hasDate = true;
      else if (name === "server") hasServer = true;
      else if (name === "content-type") hasType = true;
      else if (name === "upgrade") hasUpgrade = true;
      send = true;
    }
    // Most responses drop nothing: their list is sent as it is.
    if (!send && kept === null) kept = fields.slice(0, i);
    else if (send && kept !== null) kept.push(name, value);
  }
  // `fields` may be refilled by the next response (see `responseFields`).
  const own = fields.slice();
  lastFields = own;
  return lastFacts = {
    appLength,
    appClose,
    hasDate,
    hasServer,
    hasType,
    hasUpgrade,
    fields: kept ?? own,
    invalid,
  };
}

/** The options the app's `Connection` fields list (lower-case), or null when it set none. */
function connectionOptions(fields: string[]): string[] | null {
  let options: string[] | null = null;
  for (let i = 0; i < fields.length; i += 2) {
    if (fields[i] !== "connection") continue;
    for (const part of fields[i + 1].split(",")) (options ??= []).push(asciiLowerTrim(part));
  }
  return options;
}

/** Connection options the server sets itself; any other names a hop-by-hop field. */
function isServerOption(option: string): boolean {
  return option === "close" || option === "keep-alive" || option === "upgrade";
}

/** Whether two lists hold the same strings in the same order. */
function sameStrings(a: readonly string[], b: readonly string[]): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** The last `withType` made, and what from (a type is added to the same facts again and again). */
let typedFrom: HeadFacts | null = null;
let typedType = "";
let typed: HeadFacts | null = null;

/**
 * `facts` with a Content-Type field of `type` added where `headers.forEach`
 * would have put it (names in sorted order): for a type the runtime left out
 * of the Response's fields (see `impliedType`).
 */
export function withType(facts: HeadFacts, type: string): HeadFacts {
  if (facts === typedFrom && type === typedType) return typed!;
  const fields = facts.fields.slice();
  let at = 0;
  while (at < fields.length && fields[at] < "content-type") at += 2;
  fields.splice(at, 0, "content-type", type);
  typedFrom = facts;
  typedType = type;
  return typed = { ...facts, hasType: true, fields };
}

/**
 * Whether `text` may go out in a field value or reason phrase: HTAB, SP,
 * visible ASCII and obs-text (RFC 9110 §5.5, RFC 9112 §4). fetch's Headers
 * refuse only NUL, CR and LF; Bun lets any character through in a status
 * text, and the head is written one byte per character.
 */
export function isFieldText(text: string): boolean {
  // Responses repeat their values (often the very same string): one check each.
  if (text === lastFieldText) return true;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if ((c < 0x20 && c !== 0x09) || c === 0x7f || c > 0xff) return false;
  }
  lastFieldText = text;
  return true;
}

/** The last value `isFieldText` passed. */
let lastFieldText = "";

/** Parses a Content-Length the app gave: 1*DIGIT, else -1 (ignored). */
function parseLength(value: string): number {
  if (value.length === 0 || value.length > 15) return -1;
  let n = 0;
  for (let i = 0; i < value.length; i++) {
    const c = value.charCodeAt(i) - 48;
    if (c < 0 || c > 9) return -1;
    n = n * 10 + c;
  }
  return n;
}

function asciiLowerTrim(s: string): string {
  let start = 0;
  let end = s.length;
  while (start < end && (s.charCodeAt(start) === 32 || s.charCodeAt(start) === 9)) start++;
  while (end > start && (s.charCodeAt(end - 1) === 32 || s.charCodeAt(end - 1) === 9)) end--;
  let out = "";
  for (let i = start; i < end; i++) {
    const c = s.charCodeAt(i);
    out += String.fromCharCode(c >= 65 && c <= 90 ? c + 32 : c);
  }
  return out;
}

/** Everything needed to write a status line and header block. */
export interface HeadSpec {
  version: "1.0" | "1.1";
  status: number;
  statusText: string;
  facts: HeadFacts;
  framing: Framing;
  /** Content-Length to announce (for "length", and for HEAD/304 when known), or -1. */
  length: number;
  /** Whether the connection closes after this response. */
  close: boolean;
  /** Whether the client asked for HTTP/1.0 keep-alive (then say so). */
  keepAlive10: boolean;
  /** `Server:` value; "" for none. */
  ident: string;
}

/** Builds the status line and header block as a latin-1 string. */
function headText(spec: HeadSpec, date: string): string {
  const { facts } = spec;
  let head = (spec.version === "1.0" ? "HTTP/1.0 " : "HTTP/1.1 ") + spec.status + " " +
    (spec.statusText || reasonPhrase(spec.status)) + "\r\n";
  const fields = facts.fields;
  for (let i = 0; i < fields.length; i += 2) head += fields[i] + ": " + fields[i + 1] + "\r\n";
  if (!facts.hasDate) head += "date: " + date + "\r\n";
  if (!facts.hasServer && spec.ident !== "") head += "server: " + spec.ident + "\r\n";
  if (spec.length >= 0) head += "content-length: " + spec.length + "\r\n";
  if (spec.framing === "chunked") head += "transfer-encoding: chunked\r\n";
  const upgrade = facts.hasUpgrade ? "upgrade, " : "";
  if (spec.close) head += "connection: " + upgrade + "close\r\n";
  else if (spec.keepAlive10) head += "connection: " + upgrade + "keep-alive\r\n";
  else if (facts.hasUpgrade) head += "connection: upgrade\r\n";
  return head + "\r\n";
}

const encoder = new TextEncoder();

/**
 * The last head encoded, and what it was made from: consecutive responses
 * usually share their head (Date changes once a second), and comparing the
 * parts is cheaper than building the text.
 */
let lastSpec: HeadSpec | null = null;
let lastDate = "";
let lastHeadBytes = new Uint8Array(0);

/** Whether `spec` (at `date`) gives the same head as the last one encoded. */
function sameAsLast(spec: HeadSpec, date: string): boolean {
  const last = lastSpec;
  if (
    last === null || date !== lastDate || spec.status !== last.status ||
    spec.length !== last.length || spec.close !== last.close ||
    spec.framing !== last.framing || spec.statusText !== last.statusText ||
    spec.version !== last.version || spec.keepAlive10 !== last.keepAlive10 ||
    spec.ident !== last.ident
  ) {
    return false;
  }
  const a = spec.facts;
  const b = last.facts;
  return a === b ||
    (a.hasDate === b.hasDate && a.hasServer === b.hasServer && sameStrings(a.fields, b.fields));
}

/** Bodies up to this many bytes are compared to the last one (see `lastWhole`). */
const REUSE_LIMIT = 256;

/**
 * The last head and body made, when its body is at most `REUSE_LIMIT`
 * bytes: a response equal to it gets these very bytes again (they are never
 * written to once made), which costs a comparison instead of a new array.
 */
let lastWhole: Uint8Array | null = null;

/** Whether `body` equals `whole` from byte `at` on. */
function sameBody(body: Uint8Array | undefined, whole: Uint8Array, at: number): boolean {
  const n = whole.byteLength - at;
  if ((body === undefined ? 0 : body.byteLength) !== n) return false;
  for (let i = 0; i < n; i++) if (body![i] !== whole[at + i]) return false;
  return true;
}

/**
 * The status line and header block, followed by `body` when given, in one
 * array (so that head and small body go out in one write). The array may be
 * the one returned for an equal response before: never write to it.
 */
export function encodeHead(spec: HeadSpec, body?: Uint8Array): Uint8Array {
  const date = httpDate();
  const bodyLength = body ? body.byteLength : 0;
  let out: Uint8Array;
  if (sameAsLast(spec, date)) {
    const last = lastWhole;
    if (last !== null && sameBody(body, last, lastHeadBytes.byteLength)) return last;
    out = allocate(lastHeadBytes.byteLength + bodyLength);
    out.set(lastHeadBytes);
  } else {
    const head = headText(spec, date);
    out = allocate(head.length + bodyLength);
    const target = out.subarray(0, head.length);
    // Fast path: pure ASCII encodes 1:1 with the native encoder.
    const { read, written } = encoder.encodeInto(head, target);
    if (read !== head.length || written !== head.length) {
      for (let i = 0; i < head.length; i++) out[i] = head.charCodeAt(i);
    }
    lastSpec = spec;
    lastDate = date;
    lastHeadBytes = target.slice();
  }
  if (body) out.set(body, lastHeadBytes.byteLength);
  lastWhole = bodyLength <= REUSE_LIMIT ? out : null;
  return out;
}

/** The last chunk with an empty trailer section. */
export const LAST_CHUNK: Uint8Array = new Uint8Array([48, 13, 10, 13, 10]);
/** The CRLF that ends a chunk's data. */
export const CRLF: Uint8Array = new Uint8Array([13, 10]);

/**
 * A chunk's size line: the data itself is then written as it is, never
 * copied, followed by `CRLF`.
 */
export function chunkPrefix(size: number): Uint8Array {
  const hex = size.toString(16);
  const out = allocate(hex.length + 2);
  for (let k = 0; k < hex.length; k++) out[k] = hex.charCodeAt(k);
  out[hex.length] = 13;
  out[hex.length + 1] = 10;
  return out;
}

/** The text of a waitress error page. */
export function errorBody(reason: string, detail: string): string {
  return reason + "\r\n\r\n" + detail + "\r\n\r\n(generated by waitress)";
}

/**
 * A complete error response: the head and, unless it answers a HEAD request
 * (which gets the same Content-Length but no body), the page.
 */
export function errorResponseBytes(
  version: "1.0" | "1.1",
  status: number,
  detail: string,
  ident: string,
  close: boolean,
  head: boolean,
): Uint8Array {
  const reason = reasonPhrase(status);
  const body = encoder.encode(errorBody(reason, detail));
  return encodeHead({
    version,
    status,
    statusText: reason,
    facts: {
      appLength: -1,
      appClose: false,
      hasDate: false,
      hasServer: false,
      hasType: true,
      hasUpgrade: false,
      fields: ["content-type", "text/plain; charset=utf-8"],
      invalid: null,
    },
    framing: "length",
    length: body.byteLength,
    close,
    keepAlive10: false,
    ident,
  }, head ? undefined : body);
}
