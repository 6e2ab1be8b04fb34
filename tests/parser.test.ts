// Raw-bytes tests for every request-head rule of issue 3 (RFC 9112 §2-§9,
// RFC 9110 §5, §8.6, §10.1.1): accepted and rejected forms, with the status.
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import {
  MAX_TARGET_LENGTH,
  type ParseEvent,
  type ParserLimits,
  type RequestHead,
  RequestParser,
} from "../src/parser.ts";

const LIMITS: ParserLimits = { maxRequestHeaderSize: 8192, maxRequestBodySize: 1 << 20 };

/** Bytes of a string, one byte per char (so "\xff" is the byte 0xff). */
function bytes(s: string): Uint8Array {
  const b = new Uint8Array(s.length);
  for (let i = 0; i < s.length; i++) b[i] = s.charCodeAt(i);
  return b;
}

function text(b: Uint8Array): string {
  let s = "";
  for (const c of b) s += String.fromCharCode(c);
  return s;
}

/** Feeds `input` whole and collects events until null or the first error. */
function events(input: string, limits: ParserLimits = LIMITS): ParseEvent[] {
  const p = new RequestParser(limits);
  p.push(bytes(input));
  const out: ParseEvent[] = [];
  for (;;) {
    const e = p.next();
    if (e === null) break;
    out.push(e);
    if (e.kind === "error") break;
    if (out.length > 1000) throw new Error("runaway parser");
  }
  return out;
}

/** The single head of `input`, asserting it parsed without error. */
function head(input: string, limits: ParserLimits = LIMITS): RequestHead {
  const ev = events(input, limits);
  const err = ev.find((e) => e.kind === "error");
  if (err && err.kind === "error") {
    assert.fail(`unexpected ${err.error.status} ${err.error.detail} for ${JSON.stringify(input)}`);
  }
  const h = ev.find((e) => e.kind === "head");
  assert.ok(h && h.kind === "head", `no head for ${JSON.stringify(input)}`);
  return h.head;
}

/** The status of the first error for `input`, or 0 when none. */
function status(input: string, limits: ParserLimits = LIMITS): number {
  const e = events(input, limits).find((e) => e.kind === "error");
  return e && e.kind === "error" ? e.error.status : 0;
}

/** A 1.1 GET with Host and the given extra header lines. */
function get(...lines: string[]): string {
  return "GET / HTTP/1.1\r\nHost: x\r\n" + lines.map((l) => l + "\r\n").join("") + "\r\n";
}

describe("request line", () => {
  test("a minimal request", () => {
    const h = head("GET /a?b=1 HTTP/1.1\r\nHost: example.com\r\n\r\n");
    assert.equal(h.method, "GET");
    assert.equal(h.target, "/a?b=1");
    assert.equal(h.path, "/a?b=1");
    assert.equal(h.version, "1.1");
    assert.equal(h.authority, "example.com");
    assert.equal(h.bodyKind, "none");
    assert.equal(h.contentLength, 0);
    assert.deepEqual(h.headers, [["Host", "example.com"]]);
  });

  test("head, then end, then idle", () => {
    const ev = events("GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    assert.deepEqual(ev.map((e) => e.kind), ["head", "end"]);
  });

  test("extension methods are passed as sent", () => {
    assert.equal(head("PURGE / HTTP/1.1\r\nHost: x\r\n\r\n").method, "PURGE");
    assert.equal(
      head("M-SEARCH * HTTP/1.1\r\nHost: x\r\n\r\n".replace("*", "/")).method,
      "M-SEARCH",
    );
    for (const m of ["GET", "PUT", "POST", "HEAD", "DELETE", "PATCH", "OPTIONS"]) {
      assert.equal(head(`${m} / HTTP/1.1\r\nHost: x\r\n\r\n`).method, m);
    }
  });

  test("not exactly `method SP target SP version` is 400", () => {
    for (
      const line of [
        "GET  / HTTP/1.1", // two spaces
        "GET /  HTTP/1.1",
        "GET\t/ HTTP/1.1", // tab separator
        "GET /\tHTTP/1.1",
        " GET / HTTP/1.1", // leading space
        "GET / HTTP/1.1 ", // trailing space
        "GET /", // HTTP/0.9 style
        "GET / HTTP/1.1 extra",
        "GET",
        "/ HTTP/1.1",
        "GET HTTP/1.1",
      ]
    ) {
      assert.equal(status(line + "\r\nHost: x\r\n\r\n"), 400, JSON.stringify(line));
    }
  });

  test("invalid method token is 400", () => {
    for (const m of ["G@T", "GE(T", "G\xc9T", "GET\x00", 'G"T', "[GET]", "G,T"]) {
      assert.equal(status(`${m} / HTTP/1.1\r\nHost: x\r\n\r\n`), 400, JSON.stringify(m));
    }
  });

  test("target with whitespace, control bytes, backslash, a fragment or raw non-ASCII is 400", () => {
    for (
      const t of [
        "/a\x01b",
        "/a\x7fb",
        "/a\x00",
        "/\xe4",
        "/a\\..\\b",
        "/a\x0bb",
        "/a\x0cb",
        "/admin#/../public",
        "/a?b#c",
        "http://x/a#b",
      ]
    ) {
      assert.equal(status(`GET ${t} HTTP/1.1\r\nHost: x\r\n\r\n`), 400, JSON.stringify(t));
    }
  });

  test("version: case-sensitive `HTTP/DIGIT.DIGIT`", () => {
    for (
      const v of [
        "http/1.1",
        "Http/1.1",
        "HTTP/1",
        "HTTP/01.1",
        "HTTP/1.10",
        "HTTP/1.1.1",
        "HTTP/a.b",
        "HTTP1.1",
        "HTTP/1,1",
        "HTTPS/1.1",
      ]
    ) {
      assert.equal(status(`GET / ${v}\r\nHost: x\r\n\r\n`), 400, v);
    }
  });

  test("unsupported major version is 505; higher 1.x minors are served as 1.1", () => {
    assert.equal(status("GET / HTTP/2.0\r\nHost: x\r\n\r\n"), 505);
    assert.equal(status("GET / HTTP/0.9\r\nHost: x\r\n\r\n"), 505);
    assert.equal(status("GET / HTTP/9.9\r\nHost: x\r\n\r\n"), 505);
    const e = events("GET / HTTP/2.0\r\nHost: x\r\n\r\n")[0];
    assert.ok(e.kind === "error");
    assert.equal(e.error.status, 505);
    assert.equal(head("GET / HTTP/1.2\r\nHost: x\r\n\r\n").version, "1.1");
    assert.equal(head("GET / HTTP/1.9\r\nHost: x\r\n\r\n").version, "1.1");
    assert.equal(head("GET / HTTP/1.0\r\n\r\n").version, "1.0");
  });

  test("bare CR and bare LF in the request line are 400", () => {
    assert.equal(status("GET /\r HTTP/1.1\r\nHost: x\r\n\r\n"), 400);
    assert.equal(status("GET / HTTP/1.1\rHost: x\r\n\r\n"), 400);
    assert.equal(status("GET / HTTP/1.1\nHost: x\n\n"), 400);
    assert.equal(status("GET /\n HTTP/1.1\r\nHost: x\r\n\r\n"), 400);
    assert.equal(status("GET\r / HTTP/1.1\r\nHost: x\r\n\r\n"), 400);
  });

  test("bare-LF requests are refused at once, not left waiting", () => {
    const p = new RequestParser(LIMITS);
    p.push(bytes("GET / HTTP/1.1\n"));
    const e = p.next();
    assert.ok(e !== null && e.kind === "error");
    assert.equal(e.error.status, 400);
  });

  test("a line whose first byte cannot start a method is refused at once (TLS sent to a plain port)", () => {
    // A TLS ClientHello's record header, then more handshake bytes: no LF.
    for (
      const start of ["\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", " GET", "\x00", "\r\n\x80"]
    ) {
      const p = new RequestParser(LIMITS);
      p.push(bytes(start));
      const e = p.next();
      assert.ok(e !== null && e.kind === "error", JSON.stringify(start));
      assert.equal(e.error.status, 400);
    }
    // A valid method so far still waits for the rest of its line.
    const p = new RequestParser(LIMITS);
    p.push(bytes("SSH-2.0-OpenSSH_9.2p1"));
    assert.equal(p.next(), null);
  });

  test("empty lines before the request line are skipped", () => {
    const h = head("\r\n\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n");
    assert.equal(h.method, "GET");
    const p = new RequestParser(LIMITS);
    p.push(bytes("\r\n"));
    assert.equal(p.next(), null);
    // Consumed, but part of the next head: its clock runs (a client that
    // sends only empty lines is timed like a slow head).
    assert.equal(p.state, "head");
    assert.equal(p.buffered, 0);
    // A bare LF, or a CR followed by something else, is not an empty line.
    assert.equal(status("\nGET / HTTP/1.1\r\nHost: x\r\n\r\n"), 400);
    assert.equal(status("\rGET / HTTP/1.1\r\nHost: x\r\n\r\n"), 400);
    assert.equal(status(" \r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n"), 400);
  });

  test("skipped empty lines count toward the header limit", () => {
    const limits = { maxRequestHeaderSize: 100, maxRequestBodySize: 100 };
    const req = "GET / HTTP/1.1\r\nHost: x\r\n\r\n"; // 27 bytes
    assert.equal(status("\r\n".repeat(36) + req, limits), 0); // 72 + 27 = 99
    assert.equal(status("\r\n".repeat(37) + req, limits), 431); // 101
    assert.equal(status("\r\n".repeat(60), limits), 431);
  });

  test("an 8000-octet request line is accepted; a target over the limit is 414", () => {
    const limits = { maxRequestHeaderSize: 65536, maxRequestBodySize: 1 };
    const t8000 = "/" + "a".repeat(8000 - "GET / HTTP/1.1".length);
    const line = `GET ${t8000} HTTP/1.1`;
    assert.equal(line.length, 8000);
    assert.equal(head(line + "\r\nHost: x\r\n\r\n", limits).target, t8000);
    const tMax = "/" + "b".repeat(MAX_TARGET_LENGTH - 1);
    assert.equal(head(`GET ${tMax} HTTP/1.1\r\nHost: x\r\n\r\n`, limits).target.length, 16384);
    const tOver = tMax + "c";
    const ev = events(`GET ${tOver} HTTP/1.1\r\nHost: x\r\n\r\n`, limits);
    assert.equal(ev.length, 1);
    assert.ok(ev[0].kind === "error");
    assert.equal(ev[0].error.status, 414);
  });

  test("CONNECT is refused with 501", () => {
    const ev = events("CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n");
    assert.ok(ev[0].kind === "error");
    assert.equal(ev[0].error.status, 501);
  });

  test("TRACE and TRACK, which fetch forbids in a Request, are refused with 501 too", () => {
    for (const method of ["TRACE", "TRACK"]) {
      const ev = events(`${method} / HTTP/1.1\r\nHost: x\r\n\r\n`);
      assert.ok(ev[0].kind === "error");
      assert.equal(ev[0].error.status, 501);
      assert.equal(ev[0].error.detail, `${method} is not supported`);
    }
    assert.equal(head("TRACES / HTTP/1.1\r\nHost: x\r\n\r\n").method, "TRACES");
  });

  test("a method with lower-case letters is 400, as in waitress (methods are case-sensitive)", () => {
    for (const method of ["get", "Put", "post", "dELETE", "connect", "x-Custom"]) {
      const ev = events(`${method} / HTTP/1.1\r\nHost: x\r\n\r\n`);
      assert.ok(ev[0].kind === "error", method);
      assert.equal(ev[0].error.status, 400);
      assert.equal(ev[0].error.detail, `Malformed HTTP method "${method}"`);
    }
    const long = "G" + "e".repeat(5000);
    const ev = events(`${long} / HTTP/1.1\r\nHost: x\r\n\r\n`);
    assert.ok(ev[0].kind === "error");
    assert.equal(
      ev[0].error.detail,
      "Malformed HTTP method (methods are upper-case)",
      "not echoed",
    );
    for (const method of ["PURGE", "X-CUSTOM", "M-SEARCH", "PROPFIND"]) {
      assert.equal(head(`${method} / HTTP/1.1\r\nHost: x\r\n\r\n`).method, method);
    }
  });

  test("asterisk-form only with OPTIONS", () => {
    const h = head("OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n");
    assert.equal(h.target, "*");
    assert.equal(h.path, "*");
    assert.equal(status("GET * HTTP/1.1\r\nHost: x\r\n\r\n"), 400);
    assert.equal(status("OPTIONS *x HTTP/1.1\r\nHost: x\r\n\r\n"), 400);
  });

  test("absolute-form: the target's authority wins over Host", () => {
    let h = head("GET http://example.com:8080/p?q=1 HTTP/1.1\r\nHost: other\r\n\r\n");
    assert.equal(h.authority, "example.com:8080");
    assert.equal(h.path, "/p?q=1");
    assert.equal(h.target, "http://example.com:8080/p?q=1");
    h = head("GET HTTPS://[::1]:443 HTTP/1.1\r\nHost: other\r\n\r\n");
    assert.equal(h.authority, "[::1]:443");
    assert.equal(h.path, "/");
    h = head("GET http://h?x=1 HTTP/1.1\r\nHost: h\r\n\r\n");
    assert.equal(h.path, "/?x=1");
    // Host is still required on 1.1, and must still be valid.
    assert.equal(status("GET http://h/ HTTP/1.1\r\n\r\n"), 400);
    assert.equal(status("GET http://h/ HTTP/1.1\r\nHost: a b\r\n\r\n"), 400);
    assert.equal(head("GET http://h/ HTTP/1.0\r\n\r\n").authority, "h");
  });

  test("absolute-form: bad schemes and authorities are 400", () => {
    for (
      const t of [
        "ftp://h/",
        "http:/h/",
        "http//h/",
        "http://user@h/",
        "http://user:pw@h/",
        "http:///p",
        "http://:80/",
        "http://h:8x/",
        "http://[::1/",
        "1http://h/",
        "example.com:443", // authority-form is CONNECT's
        "h/",
      ]
    ) {
      assert.equal(status(`GET ${t} HTTP/1.1\r\nHost: h\r\n\r\n`), 400, t);
    }
  });

  test("an origin-form target starting with // stays a path", () => {
    const h = head("GET //evil.example/x HTTP/1.1\r\nHost: good\r\n\r\n");
    assert.equal(h.path, "//evil.example/x");
    assert.equal(h.authority, "good");
  });
});

describe("header fields", () => {
  test("names as sent, values with only SP/HTAB trimmed, in order", () => {
    const h = head(get("X-A:  v1 ", "x-a:\tv2\t", "X-Empty:", "X-Spaces:   ", "X-Inner: a  b\tc"));
    assert.deepEqual(h.headers, [
      ["Host", "x"],
      ["X-A", "v1"],
      ["x-a", "v2"],
      ["X-Empty", ""],
      ["X-Spaces", ""],
      ["X-Inner", "a  b\tc"],
    ]);
    assert.equal(h.get("x-a"), "v1, v2");
    assert.equal(h.get("X-A"), "v1, v2");
    assert.equal(h.get("x-empty"), "");
    assert.equal(h.get("x-missing"), undefined);
    assert.equal(h.get("host"), "x");
  });

  test("obs-text is kept byte-exact; \\x85, \\xa0 are not whitespace", () => {
    const h = head(get("X-Latin: caf\xe9 \xff", "X-Nbsp: \xa0v\xa0", "X-Nel: \x85v"));
    assert.equal(h.get("x-latin"), "caf\xe9 \xff");
    assert.equal(h.get("x-nbsp"), "\xa0v\xa0");
    assert.equal(h.get("x-nel"), "\x85v");
    assert.deepEqual(h.headers[1], ["X-Latin", "caf\xe9 \xff"]);
  });

  test("long values decode exactly (ASCII and latin-1)", () => {
    const ascii = "v".repeat(5000);
    const latin = "\xe9".repeat(9000) + "z";
    const h = head(get("A: " + ascii, "B: " + latin), { ...LIMITS, maxRequestHeaderSize: 65536 });
    assert.equal(h.get("a"), ascii);
    assert.equal(h.get("b"), latin);
    assert.equal(h.headers[2][1], latin);
  });

  test("obs-fold anywhere is 400 (also right after the request line)", () => {
    assert.equal(status("GET / HTTP/1.1\r\n Host: x\r\n\r\n"), 400);
    assert.equal(status("GET / HTTP/1.1\r\n\tHost: x\r\n\r\n"), 400);
    assert.equal(status(get("X-A: a", " b")), 400);
    assert.equal(status(get("X-A: a", "\tb")), 400);
  });

  test("whitespace between field name and colon is 400", () => {
    assert.equal(status("GET / HTTP/1.1\r\nHost : x\r\n\r\n"), 400);
    assert.equal(status(get("X-A\t: 1")), 400);
    assert.equal(status(get("X A: 1")), 400);
  });

  test("empty or non-token field names are 400", () => {
    for (
      const line of [
        ": x",
        "X(A): 1",
        "X@A: 1",
        'X"A: 1',
        "X\xe9: 1",
        "X\x00: 1",
        "[a]: 1",
        "a/b: 1",
        "NoColon",
      ]
    ) {
      assert.equal(status(get(line)), 400, JSON.stringify(line));
    }
  });

  test("NUL, CR, LF and other control bytes in a value are 400; HTAB is fine", () => {
    for (const v of ["a\x00b", "a\x01", "\x0bchunked", "a\x0cb", "a\x1fb", "a\x7fb", "a\x1b[0m"]) {
      assert.equal(status(get("X-V: " + v)), 400, JSON.stringify(v));
    }
    assert.equal(status(get("X-V: a\rb")), 400); // bare CR
    assert.equal(status("GET / HTTP/1.1\r\nHost: x\r\nX-V: a\nb: c\r\n\r\n"), 400); // bare LF
    assert.equal(status("GET / HTTP/1.1\r\nHost: x\nX: y\r\n\r\n"), 400);
    assert.equal(status("GET / HTTP/1.1\r\nHost: x\r\n\n"), 400);
    assert.equal(status("GET / HTTP/1.1\r\nHost: x\r\n\r\r\n"), 400);
    assert.equal(head(get("X-V: a\tb")).get("x-v"), "a\tb");
  });

  test("lookup lower-cases ASCII only (no Kelvin-sign tricks)", () => {
    // Names are tokens, so a UTF-8 Kelvin sign in a name is refused outright...
    assert.equal(status(get("Trans\xe2\x84\xaafer: 1")), 400);
    // ...and get() never folds non-ASCII characters.
    const h = head(get("X-K: 1"));
    assert.equal(h.get("x-k"), "1");
    assert.equal(h.get("X-K"), "1");
    assert.equal(h.get("x-\u212a"), undefined);
  });
});

describe("Host", () => {
  test("HTTP/1.1 requires exactly one Host", () => {
    assert.equal(status("GET / HTTP/1.1\r\n\r\n"), 400);
    assert.equal(status("GET / HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n"), 400);
    assert.equal(status("GET / HTTP/1.1\r\nHost: a\r\nhost: b\r\n\r\n"), 400);
    assert.equal(status("GET / HTTP/1.0\r\nHost: a\r\nHost: a\r\n\r\n"), 400);
    const h = head("GET / HTTP/1.0\r\n\r\n");
    assert.equal(h.authority, "");
  });

  test("valid Host values", () => {
    for (
      const v of [
        "example.com",
        "example.com:8080",
        "127.0.0.1",
        "127.0.0.1:80",
        "[::1]",
        "[::1]:8080",
        "[2001:db8::1]",
        "[2001:db8:0:0:0:0:0:1]",
        "[::ffff:192.0.2.1]",
        "[v1.fe80::a+en1]",
        "xn--bcher-kva.example",
        "a%20b",
        "h:",
        "sub_domain.example~!$&'()*+,;=",
        "",
      ]
    ) {
      assert.equal(head(get().replace("Host: x", () => "Host: " + v)).authority, v, v);
    }
  });

  test("invalid Host values are 400", () => {
    for (
      const v of [
        "user@example.com",
        "example.com/path",
        "exa mple.com",
        "example.com:80x",
        "example.com:80:81",
        "[::1",
        "::1",
        "[::g]",
        "[1:2:3:4:5:6:7:8:9]",
        "[1::2::3]",
        "[1:2:3:4:5:6:7]",
        "[::1]x",
        "[]",
        "a%2",
        "a%zz",
        "ex\xe4mple.com",
        "a\\b",
        "a?b",
        "a#b",
        // IPvFuture: "v" 1*HEXDIG "." 1*( unreserved / sub-delims / ":" )
        "[v.x]", // no version digits
        "[vg.x]",
        "[v1]", // no "."
        "[v1x]",
        "[v1.]", // nothing after the "."
        "[v1.a@b]", // "@" is not allowed after it
        "[v1.a/b]",
        "[v1.a]b", // junk after the "]"
      ]
    ) {
      assert.equal(status(get().replace("Host: x", () => "Host: " + v)), 400, JSON.stringify(v));
    }
  });
});

describe("Content-Length", () => {
  test("1*DIGIT frames the body; the rest is the next request", () => {
    const ev = events(
      "POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhelloGET /b HTTP/1.1\r\nHost: x\r\n\r\n",
    );
    assert.deepEqual(ev.map((e) => e.kind), ["head", "body", "end", "head", "end"]);
    assert.ok(ev[0].kind === "head" && ev[1].kind === "body" && ev[3].kind === "head");
    assert.equal(ev[0].head.bodyKind, "length");
    assert.equal(ev[0].head.contentLength, 5);
    assert.equal(text(ev[1].data), "hello");
    assert.equal(ev[3].head.path, "/b");
  });

  test("body data is a view of the pushed chunk, not a copy", () => {
    const p = new RequestParser(LIMITS);
    const chunk = bytes("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc");
    p.push(chunk);
    assert.equal(p.next()?.kind, "head");
    const e = p.next();
    assert.ok(e !== null && e.kind === "body");
    assert.equal(e.data.buffer, chunk.buffer);
    assert.equal(e.data.byteOffset, chunk.length - 3);
    assert.equal(e.whole, false, "it shares its chunk with the head");
  });

  test("a pushed chunk that is all body is whole, and let go of: detaching it harms nothing", () => {
    const p = new RequestParser(LIMITS);
    p.push(bytes("POST / HTTP/1.1\r\nHost: x\r\nX-A: 1\r\nContent-Length: 6\r\n\r\n"));
    const first = p.next();
    assert.ok(first !== null && first.kind === "head");
    const body = bytes("abc");
    p.push(body);
    const e = p.next();
    assert.ok(e !== null && e.kind === "body");
    assert.equal(e.data.buffer, body.buffer);
    assert.equal(e.whole, true);
    const taken = body.buffer as ArrayBuffer;
    structuredClone(taken, { transfer: [taken] });
    p.push(bytes("defGET /n HTTP/1.1\r\nHost: x\r\n\r\n"));
    const rest = p.next();
    assert.ok(rest !== null && rest.kind === "body");
    assert.equal(text(rest.data), "def");
    assert.equal(rest.whole, false, "the next request shares its chunk");
    assert.equal(p.next()?.kind, "end");
    const next = p.next();
    assert.ok(next !== null && next.kind === "head");
    assert.equal(next.head.path, "/n");
    assert.deepEqual(Object.fromEntries(first.head.headers), {
      Host: "x",
      "X-A": "1",
      "Content-Length": "6",
    });
  });

  test("chunked data is whole only when a pushed chunk holds nothing else", () => {
    const p = new RequestParser(LIMITS);
    p.push(
      bytes("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n6\r\n"),
    );
    assert.equal(p.next()?.kind, "head");
    const a = p.next();
    assert.ok(a !== null && a.kind === "body" && !a.whole);
    p.push(bytes("def"));
    p.push(bytes("ghi"));
    const b = p.next();
    const c = p.next();
    assert.ok(b !== null && b.kind === "body" && b.whole && text(b.data) === "def");
    assert.ok(c !== null && c.kind === "body" && c.whole && text(c.data) === "ghi");
  });

  test("zero length: a head of kind length 0, then end", () => {
    const ev = events("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n");
    assert.deepEqual(ev.map((e) => e.kind), ["head", "end"]);
    assert.ok(ev[0].kind === "head");
    assert.equal(ev[0].head.bodyKind, "length");
    assert.equal(ev[0].head.contentLength, 0);
  });

  test("anything but 1*DIGIT is 400", () => {
    for (
      const v of [
        "+5",
        "-5",
        "0x5",
        "5e0",
        "5.0",
        "5 5",
        "",
        "1,1",
        "5,",
        "abc",
        "\xd9\xa1",
        "5\x0b",
        "\x0b5",
        "\xa05",
        "Infinity",
        "NaN",
        "0b1",
        "1_0",
      ]
    ) {
      assert.equal(status(get("Content-Length: " + v)), 400, JSON.stringify(v));
    }
    assert.equal(head(get("Content-Length:  \t5\t ") + "12345").contentLength, 5);
    assert.equal(head(get("Content-Length: 007") + "1234567").contentLength, 7);
  });

  test("repeated identical values collapse; differing ones are 400", () => {
    assert.equal(head(get("Content-Length: 3", "Content-Length: 3") + "abc").contentLength, 3);
    assert.equal(head(get("Content-Length: 3", "content-length: 003") + "abc").contentLength, 3);
    assert.equal(status(get("Content-Length: 3", "Content-Length: 4")), 400);
    assert.equal(status(get("Content-Length: 0", "Content-Length: 10")), 400);
  });

  test("over the body limit, or too large to represent exactly (over any limit), is 413 without a head", () => {
    const big = { maxRequestHeaderSize: 8192, maxRequestBodySize: Number.MAX_SAFE_INTEGER };
    assert.equal(
      head(get("Content-Length: 9007199254740991"), big).contentLength,
      9007199254740991,
    );
    assert.equal(status(get("Content-Length: 9007199254740992"), big), 413);
    assert.equal(status(get("Content-Length: 99999999999999999999999999"), big), 413);
    const small = { maxRequestHeaderSize: 8192, maxRequestBodySize: 10 };
    assert.equal(head(get("Content-Length: 10") + "0123456789", small).contentLength, 10);
    const ev = events(get("Content-Length: 11"), small);
    assert.equal(ev.length, 1);
    assert.ok(ev[0].kind === "error");
    assert.equal(ev[0].error.status, 413);
  });
});

describe("Transfer-Encoding", () => {
  test("chunked, case-insensitive, OWS ignored", () => {
    for (const v of ["chunked", "Chunked", "CHUNKED", " chunked ", "\tchunked\t"]) {
      assert.equal(head(get("Transfer-Encoding: " + v)).bodyKind, "chunked", v);
    }
  });

  test("an empty list element is 400 (llhttp refuses it; a lenient parser reads to the close)", () => {
    for (const v of [", chunked", "chunked,", " , chunked , ", "chunked, ", "gzip,,chunked", ""]) {
      const ev = events(get("Transfer-Encoding: " + v));
      assert.ok(ev[0].kind === "error", JSON.stringify(v));
      assert.equal(ev[0].error.status, 400);
      assert.equal(ev[0].error.detail, "Transfer-Encoding has an empty list element");
    }
    assert.equal(status(get("Transfer-Encoding: chunked", "Transfer-Encoding: ,")), 400);
  });

  test("final coding not chunked, or chunked twice, is 400", () => {
    for (
      const v of [
        "chunked, gzip",
        "gzip",
        "identity",
        "chunked, chunked",
        "",
        " , ",
        "xchunked",
        "chunked;q=1",
        "\xa0chunked",
        "chun\xe2\x84\xaaed",
        "\x85chunked",
      ]
    ) {
      assert.equal(status(get("Transfer-Encoding: " + v)), 400, JSON.stringify(v));
    }
    assert.equal(status(get("Transfer-Encoding: chunked", "Transfer-Encoding: chunked")), 400);
    assert.equal(status(get("Transfer-Encoding: chunked", "Transfer-Encoding: gzip")), 400);
    assert.equal(status(get("Transfer-Encoding: \x0bchunked")), 400);
  });

  test("an unimplemented coding before chunked is 501", () => {
    assert.equal(status(get("Transfer-Encoding: gzip, chunked")), 501);
    assert.equal(status(get("Transfer-Encoding: gzip", "Transfer-Encoding: chunked")), 501);
    assert.equal(status(get("Transfer-Encoding: identity, chunked")), 501);
    // OWS before the comma is not part of the coding: still gzip.
    assert.equal(status(get("Transfer-Encoding: gzip \t, chunked")), 501);
    assert.equal(status(get("Transfer-Encoding: chunked \t, chunked")), 400);
  });

  test("Content-Length together with Transfer-Encoding is 400", () => {
    assert.equal(status(get("Content-Length: 5", "Transfer-Encoding: chunked")), 400);
    assert.equal(status(get("Transfer-Encoding: chunked", "Content-Length: 0")), 400);
  });

  test("Transfer-Encoding on HTTP/1.0 is 400", () => {
    assert.equal(status("POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n"), 400);
    assert.equal(
      status("POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n"),
      400,
    );
  });
});

describe("persistence and expectations", () => {
  test("HTTP/1.1 keeps alive unless a close token is in Connection", () => {
    assert.equal(head(get()).keepAlive, true);
    assert.equal(head(get("Connection: keep-alive")).keepAlive, true);
    assert.equal(head(get("Connection: close")).keepAlive, false);
    assert.equal(head(get("Connection: Close")).keepAlive, false);
    assert.equal(head(get("Connection: keep-alive, close")).keepAlive, false);
    assert.equal(head(get("Connection: upgrade", "Connection: close")).keepAlive, false);
    assert.equal(head(get("Connection: closed")).keepAlive, true);
    assert.equal(head(get("Connection: x-close")).keepAlive, true);
    // OWS around an element is not part of it, before a comma too.
    assert.equal(head(get("Connection: keep-alive \t, close")).keepAlive, false);
    assert.equal(head(get("Connection: close \t, keep-alive")).keepAlive, false);
    assert.equal(head(get("Connection: x-close \t, upgrade")).keepAlive, true);
  });

  test("HTTP/1.0 keeps alive only with keep-alive", () => {
    assert.equal(head("GET / HTTP/1.0\r\n\r\n").keepAlive, false);
    assert.equal(head("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n").keepAlive, true);
    assert.equal(head("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n").keepAlive, true);
    assert.equal(head("GET / HTTP/1.0\r\nConnection: te, keep-alive\r\n\r\n").keepAlive, true);
    assert.equal(head("GET / HTTP/1.0\r\nConnection: keep-alive, close\r\n\r\n").keepAlive, false);
    assert.equal(head("GET / HTTP/1.0\r\nConnection: keepalive\r\n\r\n").keepAlive, false);
  });

  test("Expect: 100-continue only on 1.1 with a body", () => {
    assert.equal(head(get("Expect: 100-continue", "Content-Length: 5")).expectContinue, true);
    assert.equal(head(get("Expect: 100-Continue", "Content-Length: 5")).expectContinue, true);
    assert.equal(
      head(get("Expect: 100-continue", "Transfer-Encoding: chunked")).expectContinue,
      true,
    );
    assert.equal(head(get("Expect: 100-continue", "Content-Length: 0")).expectContinue, false);
    assert.equal(head(get("Expect: 100-continue")).expectContinue, false);
    assert.equal(head(get("Expect: 200-ok", "Content-Length: 5")).expectContinue, false);
    const h10 = head("POST / HTTP/1.0\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n");
    assert.equal(h10.expectContinue, false);
  });

  test("proxyHeaders flags Forwarded and X-Forwarded-* in any case, and nothing else", () => {
    for (
      const name of [
        "Forwarded",
        "FORWARDED",
        "X-Forwarded-For",
        "x-forwarded-by",
        "X-FORWARDED-HOST",
        "X-Forwarded-Port",
        "x-Forwarded-Proto",
      ]
    ) {
      assert.equal(head(get(`${name}: a`)).proxyHeaders, true, name);
    }
    for (
      const name of ["Forwarde", "X-Forwarded", "Forwarded-For", "X-Forwardedx-For", "Accept"]
    ) {
      assert.equal(head(get(`${name}: a`)).proxyHeaders, false, name);
    }
    assert.equal(head(get()).proxyHeaders, false);
  });
});

describe("limits and parser state", () => {
  const limits = { maxRequestHeaderSize: 64, maxRequestBodySize: 100 };

  test("a head of exactly maxRequestHeaderSize is accepted; one byte more is 431", () => {
    const base = "GET / HTTP/1.1\r\nHost: x\r\nX: \r\n\r\n"; // 32 bytes
    const exact = base.replace("X: ", "X: " + "a".repeat(64 - base.length));
    assert.equal(exact.length, 64);
    assert.equal(status(exact, limits), 0);
    const over = exact.replace("X: ", "X: a");
    const ev = events(over, limits);
    assert.ok(ev[0].kind === "error");
    assert.equal(ev[0].error.status, 431);
    assert.equal(ev[0].error.detail, "exceeds max_header of 64");
  });

  test("maxRequestHeaders (default 100) field lines are accepted; one more is 431", () => {
    const request = (n: number) =>
      "GET / HTTP/1.1\r\nHost: x\r\n" +
      Array.from({ length: n - 1 }, (_, i) => `X-${i}: v\r\n`).join("") + "\r\n";
    const big = { maxRequestHeaderSize: 1 << 20, maxRequestBodySize: 100 };
    assert.equal(head(request(100), big).headers.length, 100);
    const ev = events(request(101), big);
    assert.ok(ev[0].kind === "error");
    assert.equal(ev[0].error.status, 431);
    assert.equal(ev[0].error.detail, "more than 100 header fields (maxRequestHeaders)");
    const three = { ...big, maxRequestHeaders: 3 };
    assert.equal(status(request(3), three), 0);
    assert.equal(status(request(4), three), 431);
    // Refused at the line that is one too many, not when the head is complete.
    const p = new RequestParser(three);
    p.push(bytes(request(4).slice(0, -2)));
    const e = p.next();
    assert.ok(e !== null && e.kind === "error" && e.error.status === 431);
  });

  test("after a head of many fields (maxRequestHeaders raised), the next heads on the parser read right", () => {
    const lines = Array.from({ length: 299 }, (_, i) => `X-${i}: v${i}\r\n`).join("");
    const many = { maxRequestHeaderSize: 1 << 20, maxRequestBodySize: 100, maxRequestHeaders: 300 };
    const ev = events(
      "GET /1 HTTP/1.1\r\nHost: x\r\n" + lines + "\r\n" +
        "GET /2 HTTP/1.1\r\nHost: y\r\nA: 1\r\n\r\n" +
        "GET /3 HTTP/1.1\r\nHost: z\r\n" + lines + "\r\n",
      many,
    );
    const heads = ev.flatMap((e) => e.kind === "head" ? [e.head] : []);
    assert.deepEqual(heads.map((h) => [h.target, h.authority, h.headers.length]), [
      ["/1", "x", 300],
      ["/2", "y", 2],
      ["/3", "z", 300],
    ]);
    assert.deepEqual(heads[1].headers, [["Host", "y"], ["A", "1"]]);
    assert.equal(heads[2].get("x-298"), "v298");
  });

  test("431 as soon as the buffered head is too long, without waiting for CRLFCRLF", () => {
    const p = new RequestParser(limits);
    p.push(bytes("GET / HTTP/1.1\r\nHost: x\r\nX-Long: "));
    assert.equal(p.next(), null);
    assert.equal(p.state, "head");
    p.push(bytes("a".repeat(40)));
    const e = p.next();
    assert.ok(e !== null && e.kind === "error");
    assert.equal(e.error.status, 431);
    // A request line with no end at all is bounded too.
    const q = new RequestParser(limits);
    q.push(bytes("GET /" + "a".repeat(100)));
    const f = q.next();
    assert.ok(f !== null && f.kind === "error" && f.error.status === 431);
  });

  test("a chunk over the body limit is 413, also when its size is past 2^53", () => {
    const post = "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n";
    for (const size of ["65", "ffffffffffffffffffffff"]) {
      const ev = events(post + size + "\r\n", limits);
      const last = ev[ev.length - 1];
      assert.ok(last.kind === "error", size);
      assert.equal(last.error.status, 413, size);
      assert.equal(last.error.detail, "exceeds max_body of 100", size);
    }
  });

  test("errors are terminal: same event again, nothing buffered, pushes ignored", () => {
    const p = new RequestParser(LIMITS);
    p.push(bytes("GET / HTTP/1.1\r\nHost : x\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n"));
    const e = p.next();
    assert.ok(e !== null && e.kind === "error");
    assert.equal(e.error.status, 400);
    assert.equal(e.error.close, true);
    assert.equal(typeof e.error.detail, "string");
    assert.equal(p.state, "error");
    assert.equal(p.buffered, 0);
    p.push(bytes("GET / HTTP/1.1\r\nHost: x\r\n\r\n"));
    assert.equal(p.buffered, 0);
    assert.equal(p.next(), e);
    assert.equal(p.next(), e);
  });

  test("state and buffered follow the request", () => {
    const p = new RequestParser(LIMITS);
    assert.equal(p.state, "idle");
    assert.equal(p.buffered, 0);
    p.push(bytes("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n\r\nab"));
    assert.equal(p.state, "head");
    assert.equal(p.buffered, 49);
    assert.equal(p.next()?.kind, "head");
    assert.equal(p.state, "body");
    assert.equal(p.buffered, 2);
    assert.equal(p.next()?.kind, "body");
    assert.equal(p.next(), null);
    assert.equal(p.state, "body");
    p.push(bytes("cdGET"));
    assert.equal(p.next()?.kind, "body");
    assert.equal(p.next()?.kind, "end");
    assert.equal(p.state, "head");
    assert.equal(p.buffered, 3);
    assert.equal(p.next(), null);
    p.push(bytes(" / HTTP/1.1\r\nHost: x\r\n\r\n"));
    assert.equal(p.next()?.kind, "head");
    assert.equal(p.next()?.kind, "end");
    assert.equal(p.state, "idle");
    assert.equal(p.next(), null);
  });

  test("bytes stay buffered while the channel does not call next()", () => {
    const p = new RequestParser(LIMITS);
    const one = "GET /1 HTTP/1.1\r\nHost: x\r\n\r\n";
    p.push(bytes(one + one));
    assert.equal(p.next()?.kind, "head");
    assert.equal(p.next()?.kind, "end");
    assert.equal(p.buffered, one.length);
    p.push(bytes(one));
    assert.equal(p.buffered, 2 * one.length);
    const kinds: string[] = [];
    for (let e = p.next(); e !== null; e = p.next()) kinds.push(e.kind);
    assert.deepEqual(kinds, ["head", "end", "head", "end"]);
  });

  test("the error detail never echoes much client input", () => {
    const long = "X".repeat(5000);
    for (
      const input of [
        `GET /${long}\x01 HTTP/1.1\r\nHost: x\r\n\r\n`,
        get(`${long}\x01: 1`),
        get(`X: ${long}\x01`),
        get(`Content-Length: ${long}`),
        get(`Transfer-Encoding: ${long}`),
      ]
    ) {
      const e = events(input, { maxRequestHeaderSize: 65536, maxRequestBodySize: 1 })[0];
      assert.ok(e.kind === "error");
      assert.ok(e.error.detail.length < 120, e.error.detail);
    }
  });
});

describe("lazily decoded strings", () => {
  test("a head's strings stay exact while later requests are parsed", () => {
    const p = new RequestParser(LIMITS);
    const heads: RequestHead[] = [];
    const req = (i: number) =>
      `GET /r${i}?q=%C3%A9 HTTP/1.1\r\nHost: h${i}\r\nX-I: ${i}\xff\r\nCookie: ${
        "c".repeat(i)
      }\r\n\r\n`;
    // Odd-sized pieces so heads straddle pushes and go through the accumulation buffer.
    let all = "";
    for (let i = 0; i < 40; i++) all += req(i);
    const b = bytes(all);
    for (let o = 0; o < b.length; o += 37) {
      p.push(b.slice(o, o + 37));
      for (let e = p.next(); e !== null; e = p.next()) if (e.kind === "head") heads.push(e.head);
    }
    assert.equal(heads.length, 40);
    for (let i = 0; i < 40; i++) {
      const h = heads[i];
      assert.equal(h.target, `/r${i}?q=%C3%A9`);
      assert.equal(h.authority, `h${i}`);
      assert.deepEqual(h.headers, [["Host", `h${i}`], ["X-I", `${i}\xff`], [
        "Cookie",
        "c".repeat(i),
      ]]);
      assert.equal(h.get("x-i"), `${i}\xff`);
    }
  });
});

test("target, Host and fields decode right when they change between requests (the decode caches)", () => {
  const p = new RequestParser(LIMITS);
  const seen: Array<[string, string]> = [];
  const fields: string[] = [];
  const sent: Array<[string, string]> = [
    ["/aa", "h1.test"],
    ["/aa", "h1.test"],
    ["/ab", "h2.test"],
    ["/ab", "h1.test"],
    ["/ba", "h3.test"],
    ["/ab", "h2.test"],
    ["/" + "x".repeat(300), "h2.test"],
    ["/" + "y".repeat(300), "h2.test"],
    ["/ab", ""],
  ];
  for (const [i, [target, host]] of sent.entries()) {
    const extra = i % 2 ? "X-A: 1\r\n" : "X-A: " + "2".repeat(i) + "\r\n";
    p.push(bytes(`GET ${target} HTTP/1.1\r\nHost: ${host}\r\n${extra}\r\n`));
    const event = p.next();
    assert.equal(event?.kind, "head");
    const head = (event as { head: RequestHead }).head;
    seen.push([head.target, head.authority]);
    fields.push(head.headers.map(([n, v]) => `${n}=${v}`).join(";"));
    assert.equal(p.next()?.kind, "end");
  }
  assert.deepEqual(seen, sent);
  assert.deepEqual(
    fields,
    sent.map(([, host], i) => `Host=${host};X-A=${i % 2 ? "1" : "2".repeat(i)}`),
  );
});

describe("a head repeated byte for byte (read again from the last one's results)", () => {
  const H =
    "GET /r?q=1 HTTP/1.1\r\nHost: rep.test:81\r\nX-A: 1\r\nx-a: 2\r\nConnection: close\r\n\r\n";
  const facts = (h: RequestHead) => ({
    method: h.method,
    target: h.target,
    path: h.path,
    authority: h.authority,
    version: h.version,
    fields: h.fields,
    headers: h.headers.map(([n, v]) => [n, v]),
    xa: h.get("x-a"),
    bodyKind: h.bodyKind,
    keepAlive: h.keepAlive,
    proxyHeaders: h.proxyHeaders,
  });

  test("is the same head as the first, each read of its header list a new list", () => {
    const p = new RequestParser(LIMITS);
    const next = () => {
      p.push(bytes(H));
      const event = p.next();
      assert.equal(event?.kind, "head");
      assert.equal(p.next()?.kind, "end");
      return (event as { head: RequestHead }).head;
    };
    const first = next();
    const want = facts(first); // its strings decoded before the next head is made
    assert.deepEqual(want.headers, [["Host", "rep.test:81"], ["X-A", "1"], ["x-a", "2"], [
      "Connection",
      "close",
    ]]);
    assert.equal(want.xa, "1, 2");
    assert.equal(want.keepAlive, false);
    const second = next();
    const third = next();
    assert.deepEqual(facts(third), want);
    assert.deepEqual(facts(second), want);
    assert.equal(second, first);
    // A Headers made on one list (Deno's lazy Request) may change it: the next is unaffected.
    const list = second.headers;
    assert.notEqual(second.headers, list);
    list[1][1] = "changed";
    list.push(["X-Added", "1"]);
    assert.deepEqual(second.headers, want.headers);
    assert.deepEqual(next().headers, want.headers);
  });

  test("is held to the limits of the parser that reads it", () => {
    head(H); // the last head parsed, under the default limits
    const size = { ...LIMITS, maxRequestHeaderSize: H.length - 1 };
    assert.equal(status(H, size), 431);
    const fewer = { ...LIMITS, maxRequestHeaders: 3 };
    assert.equal(status(H, fewer), 431);
    assert.equal(head(H, { ...LIMITS, maxRequestHeaderSize: H.length }).target, "/r?q=1");
  });

  test("is read as usual when cut across pushes, after empty lines, or changed in one byte", () => {
    const want = facts(head(H));
    for (let cut = 1; cut < H.length; cut += 7) {
      const p = new RequestParser(LIMITS);
      p.push(bytes(H.slice(0, cut)));
      const early = p.next();
      if (early !== null) assert.fail(`event before the head was whole, cut at ${cut}`);
      p.push(bytes(H.slice(cut)));
      const event = p.next();
      assert.equal(event?.kind, "head");
      assert.deepEqual(facts((event as { head: RequestHead }).head), want);
    }
    assert.deepEqual(facts(head("\r\n" + H)), want);
    assert.equal(head(H.replace("/r?q=1", "/r?q=2")).target, "/r?q=2");
    assert.equal(status(H.replace("X-A: 1", "X-A:\x001")), 400);
  });

  test("once repeated, a head that differs in any one byte is read as itself", () => {
    // Compared four bytes at a time after its first repeat, then the last
    // H.length % 4 (here 1) one by one: every position is tried.
    const outcome = (e: ParseEvent | undefined) =>
      e?.kind === "head" ? facts(e.head) : e?.kind === "error" ? e.error.status : e?.kind;
    for (let i = 0; i < H.length; i++) {
      const changed = H.slice(0, i) + String.fromCharCode(H.charCodeAt(i) ^ 1) + H.slice(i + 1);
      // The reference: fed one byte at a time, nothing can be taken as a repeat.
      const slow = new RequestParser(LIMITS);
      const input = changed + H;
      let want: ParseEvent | null = null;
      for (let k = 0; k < input.length && want === null; k++) {
        slow.push(bytes(input[k]));
        want = slow.next();
      }
      const expected = outcome(want ?? undefined);
      head(H + H + H); // the last head, repeated twice
      const got = events(H + changed + H);
      assert.deepEqual(outcome(got[2]), expected, `byte ${i} changed`);
      assert.notDeepEqual(outcome(got[2]), facts(head(H)), `byte ${i} changed`);
    }
  });

  test("only bodiless heads are remembered: a head with a body is parsed, with its body", () => {
    const post = "POST /p HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabc";
    const kinds = (input: string) =>
      events(input).map((e) => e.kind === "body" ? `body:${text(e.data)}` : e.kind);
    assert.deepEqual(kinds(post + post), ["head", "body:abc", "end", "head", "body:abc", "end"]);
    const zero = "POST /p HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n";
    assert.deepEqual(kinds(zero + zero + post), [
      "head",
      "end",
      "head",
      "end",
      "head",
      "body:abc",
      "end",
    ]);
    assert.equal(head(zero).bodyKind, "length");
  });
});
