// Chunked request bodies (RFC 9112 §7.1): the chunk-line grammar on its own,
// then the parser's decoder with its limits, terminators and trailers.
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import {
  CHUNK_EXT_INVALID,
  CHUNK_SIZE_INVALID,
  CHUNK_SIZE_TOO_LARGE,
  parseChunkLine,
} from "../src/chunked.ts";
import {
  MAX_CHUNK_LINE_LENGTH,
  type ParseEvent,
  type ParserLimits,
  RequestParser,
} from "../src/parser.ts";

const LIMITS: ParserLimits = { maxRequestHeaderSize: 8192, maxRequestBodySize: 1 << 20 };
const HEAD = "POST /up HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n";

function bytes(s: string): Uint8Array {
  const b = new Uint8Array(s.length);
  for (let i = 0; i < s.length; i++) b[i] = s.charCodeAt(i);
  return b;
}

function line(s: string): number {
  const b = bytes(s);
  return parseChunkLine(b, 0, b.length);
}

interface Result {
  kinds: string[];
  body: string;
  status: number;
  detail: string;
  events: ParseEvent[];
}

/** Feeds `body` after a chunked head and summarises what came out. */
function decode(body: string, limits: ParserLimits = LIMITS): Result {
  const p = new RequestParser(limits);
  p.push(bytes(HEAD + body));
  const r: Result = { kinds: [], body: "", status: 0, detail: "", events: [] };
  for (let e = p.next(); e !== null; e = p.next()) {
    r.events.push(e);
    r.kinds.push(e.kind);
    if (e.kind === "body") { for (const c of e.data) r.body += String.fromCharCode(c); }
    if (e.kind === "error") {
      r.status = e.error.status;
      r.detail = e.error.detail;
      break;
    }
  }
  return r;
}

describe("parseChunkLine", () => {
  test("sizes are 1*HEXDIG, any case, leading zeros allowed", () => {
    assert.equal(line("0"), 0);
    assert.equal(line("000"), 0);
    assert.equal(line("a"), 10);
    assert.equal(line("A"), 10);
    assert.equal(line("1f"), 31);
    assert.equal(line("0003"), 3);
    assert.equal(line("FfFf"), 65535);
    assert.equal(line("1fffffffffffff"), Number.MAX_SAFE_INTEGER);
    assert.equal(line("00000000000000000000000000001"), 1);
  });

  test("signs, 0x, spaces, underscores and junk are invalid sizes", () => {
    for (
      const s of [
        "",
        "0x4",
        "+4",
        "-4",
        " 4",
        "\t4",
        "4_0",
        "x4",
        "g",
        "4g",
        "4\r",
        "4\n",
        "4\x00",
        ";a",
      ]
    ) {
      assert.equal(line(s), CHUNK_SIZE_INVALID, JSON.stringify(s));
    }
  });

  test("sizes that cannot be represented exactly are refused", () => {
    assert.equal(line("20000000000000"), CHUNK_SIZE_TOO_LARGE);
    assert.equal(line("ffffffffffffffffffff"), CHUNK_SIZE_TOO_LARGE);
  });

  test("valid chunk extensions", () => {
    for (
      const s of [
        "4;a",
        "4;a=b",
        "4;a=b;c=d;e",
        '4;a="b c"',
        '4;a="q\\"x"',
        '4;a=""',
        "4 ;a",
        "4; a",
        "4;a = b",
        "4\t;\ta\t=\tb",
        '4;a="\xe9"',
        "4;!#$%&'*+-.^_`|~=x",
      ]
    ) {
      assert.equal(line(s), 4, JSON.stringify(s));
    }
  });

  test("bad chunk-extension syntax", () => {
    for (
      const s of [
        "4;",
        "4; ",
        "4;=b",
        "4;a=",
        "4;a= ",
        "4;a b",
        "4;a=b c",
        "4;a=b ",
        "4 ",
        "4;a;",
        '4;a="b',
        '4;a="b\\',
        '4;a="b"c',
        "4;a=\x00",
        "4;a\r",
        "4;a\n",
        '4;a="\x7f"',
        "4;a@b",
        "4;\xe9",
      ]
    ) {
      assert.equal(line(s), CHUNK_EXT_INVALID, JSON.stringify(s));
    }
  });
});

describe("chunked bodies", () => {
  test("chunks are decoded and end the message", () => {
    const r = decode("5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n");
    assert.deepEqual(r.kinds, ["head", "body", "body", "end"]);
    assert.equal(r.body, "hello world");
    const h = r.events[0];
    assert.ok(h.kind === "head");
    assert.equal(h.head.bodyKind, "chunked");
    assert.equal(h.head.contentLength, 0);
  });

  test("extensions are validated and ignored; upper-case hex and leading zeros", () => {
    const r = decode('0A;name=value;q="x y"\r\n0123456789\r\n000;last\r\n\r\n');
    assert.equal(r.status, 0);
    assert.equal(r.body, "0123456789");
    assert.equal(r.kinds.at(-1), "end");
  });

  test("body events are views of the pushed bytes", () => {
    const p = new RequestParser(LIMITS);
    const chunk = bytes(HEAD + "3\r\nabc\r\n0\r\n\r\n");
    p.push(chunk);
    assert.equal(p.next()?.kind, "head");
    const e = p.next();
    assert.ok(e !== null && e.kind === "body");
    assert.equal(e.data.buffer, chunk.buffer);
  });

  test("the next pipelined request follows the last chunk", () => {
    const r = decode("1\r\na\r\n0\r\n\r\nGET /next HTTP/1.1\r\nHost: x\r\n\r\n");
    assert.deepEqual(r.kinds, ["head", "body", "end", "head", "end"]);
    const h = r.events[3];
    assert.ok(h.kind === "head");
    assert.equal(h.head.path, "/next");
  });

  test("bad chunk sizes are 400", () => {
    for (const size of ["0x4", "+4", "-4", " 4", "4 ", "4_0", "", "z"]) {
      const r = decode(`${size}\r\nabcd\r\n0\r\n\r\n`);
      assert.equal(r.status, 400, JSON.stringify(size));
    }
  });

  test("a size past 2^53 is over any body limit: 413", () => {
    assert.equal(decode("ffffffffffffffffffffffff\r\nabc\r\n").status, 413);
  });

  test("bad extensions are 400", () => {
    for (const ext of [";", ";a=", ";a b", '=;a="x', "; a = "]) {
      assert.equal(decode(`3${ext}\r\nabc\r\n0\r\n\r\n`).status, 400, JSON.stringify(ext));
    }
  });

  test("a chunk not followed by CRLF is 400", () => {
    assert.equal(decode("3\r\nabcX\r\n0\r\n\r\n").status, 400);
    assert.equal(decode("3\r\nabc\n0\r\n\r\n").status, 400);
    assert.equal(decode("3\r\nabc\rX0\r\n\r\n").status, 400);
    assert.equal(decode("3\r\nabcd\r\n0\r\n\r\n").detail, "Chunk not properly terminated");
  });

  test("bare LF and bare CR in chunk lines are 400", () => {
    assert.equal(decode("3\nabc\r\n0\r\n\r\n").status, 400);
    assert.equal(decode("3\r\nabc\r\n0\n\r\n").status, 400);
    assert.equal(decode("3\rx\r\nabc\r\n0\r\n\r\n").status, 400);
    assert.equal(decode("\nabc\r\n").status, 400);
    assert.equal(decode("\r\nabc\r\n").status, 400); // an empty chunk line is not a size
  });

  test("a chunk line over the cap is 400, also before its end arrives", () => {
    const ok = "3;" + "a".repeat(MAX_CHUNK_LINE_LENGTH - 2);
    assert.equal(decode(`${ok}\r\nabc\r\n0\r\n\r\n`).status, 0);
    const over = ok + "a";
    assert.equal(decode(`${over}\r\nabc\r\n0\r\n\r\n`).status, 400);
    const p = new RequestParser(LIMITS);
    p.push(bytes(HEAD + "3;" + "a".repeat(MAX_CHUNK_LINE_LENGTH + 10)));
    assert.equal(p.next()?.kind, "head");
    const e = p.next();
    assert.ok(e !== null && e.kind === "error");
    assert.equal(e.error.status, 400);
  });

  test("chunk extensions over maxRequestHeaderSize in one body are 400", () => {
    // A line's bytes beyond 18 count: "1;" + 4094 bytes + CRLF counts 4080,
    // so two fit in 8192 and three do not.
    const long = (n: number) => `1;${"e".repeat(n)}\r\nx\r\n`;
    assert.equal(decode(long(4094) + long(4094) + "0\r\n\r\n").status, 0);
    const r = decode(long(4094).repeat(3) + "0\r\n\r\n");
    assert.equal(r.status, 400);
    assert.equal(r.detail, "Chunk extensions exceed max_header of 8192");
    assert.equal(r.body, "xx");
    // Plain size lines never count, however many chunks there are.
    assert.equal(decode("1\r\nx\r\n".repeat(5000) + "0\r\n\r\n").status, 0);
    assert.equal(decode("1;a=b\r\nx\r\n".repeat(5000) + "0\r\n\r\n").status, 0);
  });

  test("decoded total over maxRequestBodySize is 413 mid-body", () => {
    const limits = { maxRequestHeaderSize: 8192, maxRequestBodySize: 10 };
    assert.equal(decode("5\r\nhello\r\n5\r\nworld\r\n0\r\n\r\n", limits).status, 0);
    const r = decode("5\r\nhello\r\n6\r\nworld!\r\n0\r\n\r\n", limits);
    assert.deepEqual(r.kinds, ["head", "body", "error"]);
    assert.equal(r.status, 413);
    assert.equal(r.body, "hello");
    // Extensions and framing bytes do not count, only decoded bytes.
    assert.equal(decode("a;" + "x".repeat(100) + "\r\n0123456789\r\n0\r\n\r\n", limits).status, 0);
  });

  test("trailers are checked and dropped, never merged into the head", () => {
    const r = decode("3\r\nabc\r\n0\r\nX-Trailer: 1\r\nContent-Length: 99\r\nHost: evil\r\n\r\n");
    assert.equal(r.status, 0);
    assert.deepEqual(r.kinds, ["head", "body", "end"]);
    const h = r.events[0];
    assert.ok(h.kind === "head");
    assert.equal(h.head.get("x-trailer"), undefined);
    assert.equal(h.head.get("content-length"), undefined);
    assert.equal(h.head.authority, "x");
    assert.equal(h.head.headers.length, 2);
  });

  test("malformed trailers are 400", () => {
    for (
      const t of [
        " folded: 1",
        "\tfolded: 1",
        "NoColon",
        "Bad Name: 1",
        ": empty",
        "X: a\x00b",
        "X: a\rb",
        "X : 1",
      ]
    ) {
      assert.equal(decode(`0\r\nA: 1\r\n${t}\r\n\r\n`).status, 400, JSON.stringify(t));
    }
    assert.equal(decode("0\r\nX: 1\n\r\n").status, 400);
  });

  test("trailers are bounded by maxRequestHeaderSize (431)", () => {
    const limits = { maxRequestHeaderSize: 100, maxRequestBodySize: 100 };
    const HEAD_LEN = HEAD.length;
    assert.ok(HEAD_LEN < 100);
    const fits = "X: " + "a".repeat(100 - 2 - 5) + "\r\n"; // 98 bytes + final CRLF = 100
    assert.equal(fits.length + 2, 100);
    assert.equal(decode(`0\r\n${fits}\r\n`, limits).status, 0);
    const over = "X: " + "a".repeat(100 - 2 - 4) + "\r\n";
    assert.equal(decode(`0\r\n${over}\r\n`, limits).status, 431);
    const many = "A: 1\r\n".repeat(30);
    assert.equal(decode(`0\r\n${many}\r\n`, limits).status, 431);
  });

  test("a body split across pushes comes out whole", () => {
    const p = new RequestParser(LIMITS);
    let body = "";
    const kinds: string[] = [];
    for (const piece of [HEAD + "5\r", "\nhel", "lo\r", "\n0;x", "=1\r\nT: v\r", "\n", "\r\n"]) {
      p.push(bytes(piece));
      for (let e = p.next(); e !== null; e = p.next()) {
        kinds.push(e.kind);
        if (e.kind === "body") { for (const c of e.data) body += String.fromCharCode(c); }
        assert.notEqual(e.kind, "error");
      }
    }
    assert.equal(body, "hello");
    assert.equal(kinds[0], "head");
    assert.equal(kinds.at(-1), "end");
    assert.equal(p.state, "idle");
  });
});
