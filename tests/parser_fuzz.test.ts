// Seeded fuzzing: thousands of mutated requests (inserted, deleted,
// duplicated bytes, CR/LF games, huge numbers) fed in random pieces. Only
// ParseEvents may come out (never an exception), buffering stays bounded,
// nothing follows an error, and the split never changes the outcome.
import { test } from "node:test";
import assert from "node:assert/strict";
import { MAX_CHUNK_LINE_LENGTH, type ParserLimits, RequestParser } from "../src/parser.ts";

const LIMITS: ParserLimits = { maxRequestHeaderSize: 1024, maxRequestBodySize: 4096 };

/** mulberry32: small, fast, seeded; the same cases on every run and runtime. */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function bytes(s: string): number[] {
  const out: number[] = [];
  for (let i = 0; i < s.length; i++) out.push(s.charCodeAt(i));
  return out;
}

const SEEDS = [
  "GET /index.html?q=1 HTTP/1.1\r\nHost: example.com\r\nUser-Agent: fuzz\r\nAccept: */*\r\n\r\n",
  "POST /form HTTP/1.1\r\nHost: x:80\r\nContent-Length: 11\r\nConnection: close\r\n\r\nhello world",
  "POST /c HTTP/1.1\r\nHost: [::1]\r\nTransfer-Encoding: chunked\r\nExpect: 100-continue\r\n\r\n" +
  '5;ext="v"\r\nhello\r\n6\r\n world\r\n0\r\nTrailer: t\r\n\r\n',
  "GET http://h/p HTTP/1.0\r\nConnection: keep-alive\r\n\r\nGET /2 HTTP/1.1\r\nHost: h\r\n\r\n",
  "\r\nOPTIONS * HTTP/1.1\r\nHost: h\r\nX-A: 1\r\nx-a: 2\r\n\r\n",
  "PUT /u HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\nabcDELETE /d HTTP/1.1\r\nHost: h\r\n\r\n",
].map(bytes);

const INTERESTING = [
  0x0d,
  0x0a,
  0x20,
  0x09,
  0x00,
  0x3a,
  0x3b,
  0x3d,
  0x22,
  0x2c,
  0x30,
  0x66,
  0x7f,
  0x80,
  0xff,
  0x0b,
];
const SNIPPETS = [
  "\r\n",
  "\n",
  "\r",
  "\r\n\r\n",
  " ",
  "99999999999999999999999",
  "ffffffffffffffffffff",
  "Content-Length: 5\r\n",
  "Transfer-Encoding: chunked\r\n",
  "Transfer-Encoding: gzip, chunked\r\n",
  "Host: y\r\n",
  "0\r\n\r\n",
  "1;a=b\r\nx\r\n",
  "HTTP/1.1",
  "%00",
  "-1",
  "+1",
  "0x10",
].map(bytes);

function mutate(src: number[], r: () => number): number[] {
  const b = src.slice();
  const rounds = 1 + Math.floor(r() * 4);
  for (let k = 0; k < rounds; k++) {
    const at = Math.floor(r() * (b.length + 1));
    switch (Math.floor(r() * 8)) {
      case 0: // insert a random byte
        b.splice(at, 0, Math.floor(r() * 256));
        break;
      case 1: // insert an interesting byte
        b.splice(at, 0, INTERESTING[Math.floor(r() * INTERESTING.length)]);
        break;
      case 2: // delete a few bytes
        b.splice(at, 1 + Math.floor(r() * 3));
        break;
      case 3: { // duplicate a range
        const len = Math.floor(r() * 40);
        b.splice(at, 0, ...b.slice(at, at + len));
        break;
      }
      case 4: // replace a byte
        if (at < b.length) b[at] = INTERESTING[Math.floor(r() * INTERESTING.length)];
        break;
      case 5: // insert a snippet
        b.splice(at, 0, ...SNIPPETS[Math.floor(r() * SNIPPETS.length)]);
        break;
      case 6: { // CRLF -> LF, or LF -> CRLF somewhere
        const i = b.indexOf(0x0d, at);
        if (i >= 0 && b[i + 1] === 0x0a) b.splice(i, 1);
        else b.splice(at, 0, 0x0d);
        break;
      }
      default: // truncate
        b.length = at;
    }
  }
  return b;
}

/** Feeds `input` in the given pieces, checks the invariants, and renders the outcome. */
function feed(input: Uint8Array, cuts: number[], limits: ParserLimits): string {
  const p = new RequestParser(limits);
  const bound = Math.max(limits.maxRequestHeaderSize, MAX_CHUNK_LINE_LENGTH + 2);
  const out: string[] = [];
  let body = "";
  let prev = 0;
  for (const cut of [...cuts, input.length]) {
    p.push(input.subarray(prev, cut));
    prev = cut;
    for (let n = 0;; n++) {
      assert.ok(n < 100000, "runaway parser");
      const e = p.next();
      if (e === null) break;
      switch (e.kind) {
        case "body":
          assert.ok(e.data instanceof Uint8Array && e.data.length > 0);
          for (const c of e.data) body += String.fromCharCode(c);
          break;
        case "head":
          if (body) out.push(body);
          body = "";
          assert.ok(typeof e.head.method === "string" && e.head.method.length > 0);
          assert.ok(Array.isArray(e.head.headers));
          out.push(
            `head ${e.head.method} ${e.head.target} ${e.head.bodyKind} ${e.head.headers.length}`,
          );
          break;
        case "end":
          if (body) out.push(body);
          body = "";
          out.push("end");
          break;
        case "error": {
          assert.ok(
            [400, 413, 414, 431, 501, 505].includes(e.error.status),
            String(e.error.status),
          );
          assert.equal(e.error.close, true);
          assert.ok(e.error.detail.length < 120);
          // Terminal: the same event again, nothing buffered, pushes ignored.
          assert.equal(p.next(), e);
          assert.equal(p.state, "error");
          p.push(new Uint8Array(10));
          assert.equal(p.buffered, 0);
          assert.equal(p.next(), e);
          if (body) out.push(body);
          out.push(`error ${e.error.status} ${e.error.detail}`);
          return out.join("|");
        }
        default:
          assert.fail("unknown event " + JSON.stringify(e));
      }
    }
    // Needing more bytes, the parser holds at most one head (or one chunk line).
    assert.ok(p.buffered <= bound, `buffered ${p.buffered}`);
  }
  if (body) out.push(body);
  return out.join("|") + `|${p.state}`;
}

test("fuzz: mutated requests produce only events, bounded buffering, split-independent results", () => {
  const r = rng(0x5eed);
  const started = Date.now();
  let cases = 0;
  const statuses = new Map<string, number>();
  for (; cases < 20000 && Date.now() - started < 4000; cases++) {
    const seed = SEEDS[cases % SEEDS.length];
    const input = Uint8Array.from(mutate(seed, r));
    const limits = cases % 5 === 0 ? { maxRequestHeaderSize: 48, maxRequestBodySize: 4 } : LIMITS;
    const whole = feed(input, [], limits);
    const cuts: number[] = [];
    for (let i = 1; i < input.length; i++) if (r() < 0.15) cuts.push(i);
    assert.equal(feed(input, cuts, limits), whole, JSON.stringify(String.fromCharCode(...input)));
    const key = whole.match(/error (\d+)/)?.[1] ?? "ok";
    statuses.set(key, (statuses.get(key) ?? 0) + 1);
  }
  assert.ok(cases >= 1000, `only ${cases} cases ran`);
  // The mutations must reach both accepting and rejecting paths.
  assert.ok((statuses.get("ok") ?? 0) > 50);
  assert.ok((statuses.get("400") ?? 0) > 50);
});

test("fuzz: random bytes never throw", () => {
  const r = rng(42);
  for (let k = 0; k < 2000; k++) {
    const len = Math.floor(r() * 300);
    const input = new Uint8Array(len);
    for (let i = 0; i < len; i++) {
      input[i] = r() < 0.3
        ? INTERESTING[Math.floor(r() * INTERESTING.length)]
        : Math.floor(r() * 256);
    }
    // Start some inputs like a request so the header and body paths get random bytes too.
    const prefix = bytes(
      k % 3 === 0
        ? "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
        : k % 3 === 1
        ? "GET / HTTP/1.1\r\n"
        : "",
    );
    const all = Uint8Array.from([...prefix, ...input]);
    const whole = feed(all, [], LIMITS);
    const cuts: number[] = [];
    for (let i = 1; i < all.length; i++) if (r() < 0.2) cuts.push(i);
    assert.equal(feed(all, cuts, LIMITS), whole);
  }
});

test("fuzz: huge inputs stay bounded", () => {
  const r = rng(7);
  for (let k = 0; k < 20; k++) {
    const input = new Uint8Array(200000);
    for (let i = 0; i < input.length; i++) input[i] = 0x61 + Math.floor(r() * 3);
    if (k % 2 === 0) input.set(Uint8Array.from(bytes("GET / HTTP/1.1\r\nX: ")), 0);
    const cuts: number[] = [];
    for (let i = 1000; i < input.length; i += 1000 + Math.floor(r() * 5000)) cuts.push(i);
    const out = feed(input, cuts, LIMITS);
    assert.match(out, /error 431/);
  }
});

test("fuzz: a head repeated byte for byte gives what parsing it again gives", () => {
  // Whole, a head equal to the last bodiless one is read as a repeat (see
  // lastHead in the parser); fed byte by byte, every head is cut, so each is
  // parsed line by line. Both must agree, under the limits of the parser at
  // hand, whatever parser (and limits) saw the head first.
  const r = rng(0x4e9ea7);
  const small: ParserLimits = { maxRequestHeaderSize: 64, maxRequestBodySize: 4 };
  const started = Date.now();
  let cases = 0;
  for (; cases < 1500 && Date.now() - started < 4000; cases++) {
    const seed = SEEDS[cases % SEEDS.length];
    // Unchanged seeds too: valid bodiless heads are the ones read as repeats.
    const a = r() < 0.4 ? seed : mutate(seed, r);
    const b = r() < 0.5 ? a : mutate(seed, r);
    const input = Uint8Array.from([...a, ...a, ...b, ...a, ...a]);
    const everyByte = Array.from({ length: input.length - 1 }, (_, i) => i + 1);
    for (const limits of [LIMITS, small]) {
      const whole = feed(input, [], limits);
      assert.equal(
        feed(input, everyByte, limits),
        whole,
        JSON.stringify(String.fromCharCode(...input)),
      );
    }
  }
  assert.ok(cases >= 300, `only ${cases} cases ran`);
});
