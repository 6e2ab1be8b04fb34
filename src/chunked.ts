/**
 * The grammar of one chunked-coding control line (RFC 9112 §7.1), checked
 * byte by byte: `chunk-size [ chunk-ext ]` without its CRLF. The request
 * parser (`parser.ts`) finds the line, this module decides what it means.
 *
 * Written by hand on purpose: `parseInt(s, 16)` accepts `0x`, signs, spaces
 * and silently loses precision, and every one of those has been a smuggling
 * bug somewhere (CVE-2022-24761 in waitress).
 * @module
 */

/** The size digits are not `1*HEXDIG` (`0x4`, `+4`, ` 4`, `4 `, `4_0`, empty...). */
export const CHUNK_SIZE_INVALID = -1;
/** The text after the size does not match `chunk-ext`. */
export const CHUNK_EXT_INVALID = -2;
/** The size does not fit in a safe integer (more than 2^53 - 1 octets). */
export const CHUNK_SIZE_TOO_LARGE = -3;

const SP = 0x20;
const HTAB = 0x09;
const SEMI = 0x3b;
const EQUALS = 0x3d;
const DQUOTE = 0x22;
const BACKSLASH = 0x5c;

/** HEXDIG value + 1 for each byte (0 = not a hex digit), so one lookup decides both. */
const HEX = new Uint8Array(256);
/** tchar (RFC 9110 §5.6.2): the bytes a token may contain. */
const TCHAR = new Uint8Array(256);
/** qdtext (RFC 9110 §5.6.4): HTAB, SP, 0x21, 0x23-0x5B, 0x5D-0x7E, obs-text. */
const QDTEXT = new Uint8Array(256);
/** What may follow a backslash in a quoted-pair: HTAB, SP, VCHAR, obs-text. */
const QPAIR = new Uint8Array(256);

for (let c = 0; c < 256; c++) {
  if (c >= 0x30 && c <= 0x39) HEX[c] = c - 0x30 + 1;
  else if (c >= 0x41 && c <= 0x46) HEX[c] = c - 0x41 + 11;
  else if (c >= 0x61 && c <= 0x66) HEX[c] = c - 0x61 + 11;
  const alnum = (c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x5a) || (c >= 0x61 && c <= 0x7a);
  if (alnum || "!#$%&'*+-.^_`|~".includes(String.fromCharCode(c))) TCHAR[c] = 1;
  const vchar = c >= 0x21 && c <= 0x7e;
  const obsText = c >= 0x80;
  if (c === HTAB || c === SP || obsText || (vchar && c !== DQUOTE && c !== BACKSLASH)) {
    QDTEXT[c] = 1;
  }
  if (c === HTAB || c === SP || vchar || obsText) QPAIR[c] = 1;
}

/**
 * Checks one chunk control line `buf[start, end)` (CRLF excluded) and returns
 * the chunk size, or one of the negative `CHUNK_*` codes.
 *
 * Grammar (RFC 9112 §7.1 / §7.1.1):
 * `chunk-size = 1*HEXDIG`,
 * `chunk-ext = *( BWS ";" BWS chunk-ext-name [ BWS "=" BWS chunk-ext-val ] )`,
 * `chunk-ext-val = token / quoted-string`. Extensions are validated and then
 * ignored. Leading zeros are allowed (`last-chunk = 1*"0"`), and a size is
 * refused only when it cannot be represented exactly.
 */
export function parseChunkLine(buf: Uint8Array, start: number, end: number): number {
  let i = start;
  let size = 0;
  while (i < end) {
    const d = HEX[buf[i]];
    if (d === 0) break;
    size = size * 16 + (d - 1);
    // Past 2^53 the arithmetic above is no longer exact: refuse before that.
    if (size > Number.MAX_SAFE_INTEGER) return CHUNK_SIZE_TOO_LARGE;
    i++;
  }
  if (i === start) return CHUNK_SIZE_INVALID;
  if (i === end) return size;
  // Only BWS or ";" may follow the digits; anything else (x, _, +, CR...) is
  // part of a malformed size rather than of an extension.
  const first = buf[i];
  if (first !== SEMI && first !== SP && first !== HTAB) return CHUNK_SIZE_INVALID;
  return validExtensions(buf, i, end) ? size : CHUNK_EXT_INVALID;
}

/** True when `buf[i, end)` is a whole `chunk-ext` (one or more extensions). */
function validExtensions(buf: Uint8Array, i: number, end: number): boolean {
  while (i < end) {
    i = skipBws(buf, i, end);
    if (i >= end || buf[i] !== SEMI) return false;
    i = skipBws(buf, i + 1, end);
    const nameStart = i;
    while (i < end && TCHAR[buf[i]] === 1) i++;
    if (i === nameStart) return false;
    const j = skipBws(buf, i, end);
    if (j < end && buf[j] === EQUALS) {
      i = skipBws(buf, j + 1, end);
      if (i >= end) return false;
      if (buf[i] === DQUOTE) {
        i = quotedStringEnd(buf, i, end);
        if (i < 0) return false;
      } else {
        const valueStart = i;
        while (i < end && TCHAR[buf[i]] === 1) i++;
        if (i === valueStart) return false;
      }
    }
    // Without "=", i stays right after the name: trailing BWS is then only
    // valid when another ";" follows, which the next round checks.
  }
  return true;
}

function skipBws(buf: Uint8Array, i: number, end: number): number {
  while (i < end && (buf[i] === SP || buf[i] === HTAB)) i++;
  return i;
}

/** Index just past the quoted-string opening at `i`, or -1 when it is malformed. */
function quotedStringEnd(buf: Uint8Array, i: number, end: number): number {
  i++; // opening DQUOTE
  while (i < end) {
    const c = buf[i];
    if (c === DQUOTE) return i + 1;
    if (c === BACKSLASH) {
      if (i + 1 >= end || QPAIR[buf[i + 1]] === 0) return -1;
      i += 2;
    } else if (QDTEXT[c] === 1) {
      i++;
    } else {
      return -1;
    }
  }
  return -1;
}
