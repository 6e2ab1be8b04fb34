// Byte-split equivalence: feeding a byte stream whole, split at every
// possible point, or byte by byte must give exactly the same events (body
// bytes compared as one run between the other events).
import { test } from "node:test";
import assert from "node:assert/strict";
import { type ParserLimits, RequestParser } from "../src/parser.ts";

const LIMITS: ParserLimits = { maxRequestHeaderSize: 512, maxRequestBodySize: 200 };

function bytes(s: string): Uint8Array {
  const b = new Uint8Array(s.length);
  for (let i = 0; i < s.length; i++) b[i] = s.charCodeAt(i);
  return b;
}

/**
 * Pushes `pieces` one by one, draining events after each push like the
 * channel does (or, with `pushFirst`, pushes them all before draining), and
 * renders the events as text. Consecutive body events are merged. Stops at
 * the first error (after checking it repeats).
 */
function run(pieces: Uint8Array[], limits: ParserLimits = LIMITS, pushFirst = false): string {
  const p = new RequestParser(limits);
  if (pushFirst) {
    for (const piece of pieces) p.push(piece);
    pieces = [new Uint8Array(0)];
  }
  const out: string[] = [];
  let body: string | null = null;
  const flush = () => {
    if (body !== null) out.push("body " + JSON.stringify(body));
    body = null;
  };
  for (const piece of pieces) {
    p.push(piece);
    for (let e = p.next(); e !== null; e = p.next()) {
      if (e.kind === "body") {
        let s: string = body ?? "";
        for (const c of e.data) s += String.fromCharCode(c);
        body = s;
        continue;
      }
      flush();
      if (e.kind === "error") {
        assert.equal(p.next(), e);
        out.push(`error ${e.error.status} ${e.error.detail}`);
        return out.join("\n");
      }
      if (e.kind === "end") {
        out.push("end");
        continue;
      }
      const h = e.head;
      out.push(
        "head " + JSON.stringify([
          h.method,
          h.target,
          h.version,
          h.authority,
          h.path,
          h.bodyKind,
          h.contentLength,
          h.keepAlive,
          h.expectContinue,
          h.headers,
          h.get("x-dup"),
        ]),
      );
    }
  }
  flush();
  out.push("state " + p.state + " " + p.buffered);
  return out.join("\n");
}

const CASES: Array<[string, string]> = [
  ["simple GET", "GET /a?b HTTP/1.1\r\nHost: example.com\r\nUser-Agent: t\r\n\r\n"],
  ["leading CRLFs", "\r\n\r\nGET / HTTP/1.0\r\n\r\n"],
  ["lone CRLF", "\r\n"],
  [
    "pipelined with bodies",
    "POST /1 HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nX-Dup: a\r\nx-dup: b\r\n\r\nhello" +
    "GET /2 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n" +
    "\r\nPUT /3 HTTP/1.0\r\nContent-Length: 2\r\nConnection: keep-alive\r\n\r\nok",
  ],
  [
    "chunked with extensions and trailers, then another request",
    "POST /c HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip ,chunked\r\n\r\n".replace(
      "gzip ,",
      "",
    ) +
    '5;a=b;c="d e"\r\nhello\r\n01 ; x\r\n!\r\n0;last\r\nX-T: 1\r\nY-T: 2\r\n\r\n' +
    "GET /after HTTP/1.1\r\nHost: [::1]:8080\r\nExpect: 100-continue\r\n\r\n",
  ],
  [
    "expect continue with body",
    "PUT /e HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\nabc",
  ],
  ["absolute form", "GET http://h:1/p HTTP/1.1\r\nHost: y\r\n\r\n"],
  ["obs-text value", "GET / HTTP/1.1\r\nHost: x\r\nX: caf\xe9\xff \t\r\n\r\n"],
  ["bare LF in head", "GET / HTTP/1.1\r\nHost: x\nX: y\r\n\r\n"],
  ["bare CR in head", "GET / HTTP/1.1\r\nHost: x\rX: y\r\n\r\n"],
  ["obs-fold", "GET / HTTP/1.1\r\nHost: x\r\n folded\r\n\r\n"],
  ["space before colon", "GET / HTTP/1.1\r\nHost : x\r\n\r\n"],
  [
    "bad CL after a good request",
    "GET / HTTP/1.1\r\nHost: x\r\n\r\nPOST / HTTP/1.1\r\nHost: x\r\nContent-Length: +1\r\n\r\n",
  ],
  [
    "CL and TE",
    "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n",
  ],
  ["head over limit", "GET / HTTP/1.1\r\nHost: x\r\nX: " + "a".repeat(600) + "\r\n\r\n"],
  [
    "error past limit is 431",
    "GET / HTTP/1.1\r\nHost: x\r\nX: " + "a".repeat(600) + "\x00\r\n\r\n",
  ],
  ["error line without LF", "GET / HTTP/1.1\r\nHost: x\r\nX: a\x00" + "b".repeat(30)],
  ["endless request line", "GET /" + "a".repeat(700)],
  ["many leading CRLFs", "\r\n".repeat(300) + "GET / HTTP/1.1\r\nHost: x\r\n\r\n"],
  ["head exactly at limit", "GET / HTTP/1.1\r\nHost: x\r\nX: " + "a".repeat(512 - 32) + "\r\n\r\n"],
  [
    "bad chunk size",
    "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0x1\r\n",
  ],
  [
    "chunk not terminated",
    "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcd",
  ],
  ["chunk bare LF", "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\nabc"],
  [
    "chunked over body limit",
    "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n64\r\n" + "z".repeat(100) +
    "\r\nc8\r\n",
  ],
  [
    "long chunk line",
    "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n1;" + "e".repeat(5000),
  ],
  [
    "trailer over limit",
    "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n" +
    "T: 1\r\n".repeat(100),
  ],
  ["partial head at end", "GET / HTTP/1.1\r\nHost: x\r\n\r\nGET /par"],
  ["partial CL body at end", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nabc"],
  ["version 505", "GET / HTTP/2.0\r\nHost: x\r\n\r\n"],
  ["414", "GET /" + "a".repeat(16400) + " HTTP/1.1\r\nHost: x\r\n\r\n"],
];

function splits(input: Uint8Array, k: number): Uint8Array[] {
  return [input.slice(0, k), input.slice(k)];
}

test("every split point and byte-by-byte feeding give the same events", () => {
  for (const [name, text] of CASES) {
    const input = bytes(text);
    const limits = name === "414"
      ? { maxRequestHeaderSize: 65536, maxRequestBodySize: 200 }
      : LIMITS;
    const whole = run([input], limits);
    const step = input.length > 2000 ? 97 : 1; // the 414 case: sample split points
    for (let k = 0; k <= input.length; k += step) {
      assert.equal(run(splits(input, k), limits), whole, `${name}: split at ${k}`);
    }
    const single: Uint8Array[] = [];
    for (let i = 0; i < input.length; i++) single.push(input.slice(i, i + 1));
    assert.equal(run(single, limits), whole, `${name}: byte by byte`);
  }
});

test("bytes pushed one by one before any parsing (a long queue of pieces) give the same events", () => {
  for (const [name, text] of CASES) {
    const input = bytes(text);
    const limits = name === "414"
      ? { maxRequestHeaderSize: 65536, maxRequestBodySize: 200 }
      : LIMITS;
    const single: Uint8Array[] = [];
    for (let i = 0; i < input.length; i++) single.push(input.slice(i, i + 1));
    assert.equal(run(single, limits, true), run([input], limits), `${name}: queued byte by byte`);
  }
});

test("three-way splits give the same events", () => {
  for (const [name, text] of CASES) {
    const input = bytes(text);
    if (input.length > 400) continue;
    const whole = run([input]);
    for (let a = 0; a <= input.length; a += 3) {
      for (let b = a; b <= input.length; b += 5) {
        const pieces = [input.slice(0, a), input.slice(a, b), input.slice(b)];
        assert.equal(run(pieces), whole, `${name}: split at ${a}, ${b}`);
      }
    }
  }
});

test("expected outcomes of the split cases", () => {
  const get = (name: string) => run([bytes(CASES.find((c) => c[0] === name)![1])]);
  assert.match(get("lone CRLF"), /^state head 0$/);
  assert.match(get("error past limit is 431"), /^error 431/);
  assert.match(get("error line without LF"), /^state head/);
  assert.match(get("head exactly at limit"), /^head/);
  assert.match(get("head over limit"), /^error 431/);
  assert.match(get("many leading CRLFs"), /^error 431/);
  assert.match(get("chunked over body limit"), /error 413/);
  assert.match(get("bad CL after a good request"), /^head[^]*end\nerror 400/);
  assert.match(get("chunked with extensions and trailers, then another request"), /"hello!"/);
});
