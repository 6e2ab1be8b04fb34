/**
 * Parser micro-benchmark: heads/s and MB/s on one core for a minimal GET, a
 * typical browser GET (~500 bytes, 12 headers) and a chunked POST.
 *
 *     npx deno run -A bench/parser.ts
 *     npx bun bench/parser.ts
 *
 * Each case parses a buffer of many pipelined copies of the request with one
 * parser (so per-connection setup is not measured), drains every event, and
 * reports the best of several rounds. "+headers" also materialises the
 * header array and does two lookups per head, the work a channel that builds
 * a fetch `Request` adds on top.
 * @module
 */

import { RequestParser } from "../src/parser.ts";

function bytes(s: string): Uint8Array {
  const b = new Uint8Array(s.length);
  for (let i = 0; i < s.length; i++) b[i] = s.charCodeAt(i);
  return b;
}

const MINIMAL = "GET / HTTP/1.1\r\nHost: a\r\n\r\n";

const BROWSER = "GET /products/item.html?id=12345&ref=home HTTP/1.1\r\n" +
  "Host: www.example.com\r\n" +
  "User-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0\r\n" +
  "Accept: text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8\r\n" +
  "Accept-Language: en-US,en;q=0.5\r\n" +
  "Accept-Encoding: gzip, deflate, br, zstd\r\n" +
  "Referer: https://www.example.com/\r\n" +
  "Connection: keep-alive\r\n" +
  "Cookie: session=8f14e45fceea167a5a36dedd4bea2543; theme=dark\r\n" +
  "Upgrade-Insecure-Requests: 1\r\n" +
  "Sec-Fetch-Dest: document\r\n" +
  "Sec-Fetch-Mode: navigate\r\n" +
  "Sec-Fetch-Site: same-origin\r\n" +
  "\r\n";

const CHUNKED = "POST /upload HTTP/1.1\r\n" +
  "Host: api.example.com\r\n" +
  "Content-Type: application/json\r\n" +
  "Transfer-Encoding: chunked\r\n" +
  "\r\n" +
  "40\r\n" + "x".repeat(64) + "\r\n" +
  "100;name=value\r\n" + "y".repeat(256) + "\r\n" +
  "0\r\n\r\n";

interface Case {
  name: string;
  request: string;
  headers: boolean;
}

const CASES: Case[] = [
  { name: "minimal GET", request: MINIMAL, headers: false },
  { name: "browser GET", request: BROWSER, headers: false },
  { name: "browser GET +headers", request: BROWSER, headers: true },
  { name: "chunked POST", request: CHUNKED, headers: false },
];

const LIMITS = { maxRequestHeaderSize: 262144, maxRequestBodySize: 1073741824 };

/** Parses `copies` pipelined requests from `buf` in `pieces`; returns the heads seen. */
function parseAll(pieces: Uint8Array[], headers: boolean): number {
  const p = new RequestParser(LIMITS);
  let heads = 0;
  let sink = 0;
  for (const piece of pieces) {
    p.push(piece);
    for (let e = p.next(); e !== null; e = p.next()) {
      if (e.kind === "head") {
        heads++;
        if (headers) {
          sink += e.head.headers.length;
          sink += e.head.get("accept")?.length ?? 0;
          sink += e.head.get("cookie")?.length ?? 0;
        }
      } else if (e.kind === "body") {
        sink += e.data.length;
      } else if (e.kind === "error") {
        throw new Error(e.error.detail);
      }
    }
  }
  if (sink < 0) console.log(sink);
  return heads;
}

function bench(c: Case): { headsPerSec: number; mbPerSec: number; bytes: number } {
  const one = bytes(c.request);
  const copies = 2000;
  // 64 KiB reads, like a socket would deliver them; requests straddle reads.
  const all = new Uint8Array(one.length * copies);
  for (let i = 0; i < copies; i++) all.set(one, i * one.length);
  const pieces: Uint8Array[] = [];
  for (let o = 0; o < all.length; o += 65536) pieces.push(all.subarray(o, o + 65536));

  // Warm up, then take the best of several timed rounds of ~200 ms.
  const warmUntil = performance.now() + 300;
  while (performance.now() < warmUntil) parseAll(pieces, c.headers);
  let best = Infinity;
  for (let round = 0; round < 5; round++) {
    let runs = 0;
    const t0 = performance.now();
    let t1 = t0;
    while (t1 - t0 < 200) {
      if (parseAll(pieces, c.headers) !== copies) throw new Error("lost requests");
      runs++;
      t1 = performance.now();
    }
    const perHead = (t1 - t0) / (runs * copies);
    if (perHead < best) best = perHead;
  }
  const headsPerSec = 1000 / best;
  return { headsPerSec, mbPerSec: (headsPerSec * one.length) / 1e6, bytes: one.length };
}

// deno-lint-ignore no-explicit-any
const g = globalThis as any;
const runtime = g.Bun ? `bun ${g.Bun.version}` : g.Deno ? `deno ${g.Deno.version.deno}` : "node";
console.log(`parser benchmark (${runtime}), one core, best of 5 rounds`);
console.log("case                    bytes     heads/s      MB/s");
for (const c of CASES) {
  const r = bench(c);
  console.log(
    c.name.padEnd(22) + String(r.bytes).padStart(7) +
      Math.round(r.headsPerSec).toLocaleString("en-US").padStart(12) +
      r.mbPerSec.toFixed(0).padStart(10),
  );
}
