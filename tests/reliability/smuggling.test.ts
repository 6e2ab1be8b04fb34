// Request smuggling: for each classic desync pattern, the bytes after the
// first message must never be served as a second request. Every attack
// carries a request for /smuggled; the app records every path it is called
// with, so "served" means "the app saw it", whatever the response bytes say.
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import type { Server } from "../../mod.ts";
import { createServer } from "../../mod.ts";
import { RawClient, recordingLogger } from "../helpers/http_client.ts";
import { checkResponses, latin1 } from "./helpers.ts";

const SMUG = "GET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n";
const SMUG_POST = "POST /smuggled HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\n\r\nx";
const hex = (s: string) => s.length.toString(16);

interface Case {
  name: string;
  bytes: string;
  /** Statuses allowed for the (only) final response. */
  status: number[];
  /** Paths the app may see, in order (default: at most the first request's). */
  paths?: string[];
}

/** A body in chunked framing whose only chunk is `inner`. */
const chunkOf = (inner: string) => `${hex(inner)}\r\n${inner}\r\n0\r\n\r\n`;

const cases: Case[] = [];
const add = (name: string, bytes: string, status: number[], paths?: string[]) =>
  cases.push({ name, bytes, status, paths });

// --- CL.TE and TE.CL: both framings present ---------------------------------
{
  const clte = `0\r\n\r\n${SMUG}`;
  add(
    "CL.TE",
    `POST /read HTTP/1.1\r\nHost: x\r\nContent-Length: ${clte.length}\r\nTransfer-Encoding: chunked\r\n\r\n${clte}`,
    [400],
  );
  add(
    "CL.TE (TE first)",
    `POST /read HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: ${clte.length}\r\n\r\n${clte}`,
    [400],
  );
  add(
    "TE.CL",
    `POST /read HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n${
      chunkOf(SMUG)
    }`,
    [400],
  );
  add(
    "TE.CL with CL 0",
    `POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nTransfer-Encoding: chunked\r\n\r\n${
      chunkOf(SMUG)
    }`,
    [400],
  );
}

// --- TE.TE: obfuscated Transfer-Encoding, each in CL.TE and TE.CL shape ------
{
  const obfuscations: Array<[string, string]> = [
    ["xchunked", "Transfer-Encoding: xchunked"],
    ["space before colon", "Transfer-Encoding : chunked"],
    ["chunked then x", "Transfer-Encoding: chunked\r\nTransfer-Encoding: x"],
    ["x then chunked", "Transfer-Encoding: x\r\nTransfer-Encoding: chunked"],
    ["tab OWS", "Transfer-Encoding:\tchunked"],
    ["no OWS", "Transfer-Encoding:chunked"],
    ["trailing space", "Transfer-Encoding: chunked "],
    ["upper case value", "Transfer-Encoding: CHUNKED"],
    ["bare LF before TE", "X: y\nTransfer-Encoding: chunked"],
    ["bare CR before TE", "X: y\rTransfer-Encoding: chunked"],
    ["obs-fold value", "Transfer-Encoding:\r\n chunked"],
    ["obs-fold line after", "Transfer-Encoding: x\r\n chunked"],
    ["VT before value", "Transfer-Encoding: \x0bchunked"],
    ["NBSP before value", "Transfer-Encoding: \xa0chunked"],
    ["NEL before value", "Transfer-Encoding: \x85chunked"],
    ["NUL after value", "Transfer-Encoding: chunked\x00"],
    ["Kelvin sign (UTF-8)", "Transfer-Encoding: chun\xe2\x84\xaaed"],
    ["quoted", 'Transfer-Encoding: "chunked"'],
    ["chunked, identity", "Transfer-Encoding: chunked, identity"],
    ["identity, chunked", "Transfer-Encoding: identity, chunked"],
    ["chunked twice", "Transfer-Encoding: chunked, chunked"],
    ["chunked twice (lines)", "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked"],
    ["gzip, chunked", "Transfer-Encoding: gzip, chunked"],
    ["empty value", "Transfer-Encoding: "],
    ["comma only", "Transfer-Encoding: ,"],
    ["NUL in name", "Transfer-\x00Encoding: chunked"],
    ["name with trailing tab", "Transfer-Encoding\t: chunked"],
  ];
  const clte = `0\r\n\r\n${SMUG}`;
  for (const [name, te] of obfuscations) {
    add(
      `TE.TE ${name} (CL.TE shape)`,
      `POST /read HTTP/1.1\r\nHost: x\r\nContent-Length: ${clte.length}\r\n${te}\r\n\r\n${clte}`,
      [400, 501],
    );
    add(
      `TE.TE ${name} (TE.CL shape)`,
      `POST /read HTTP/1.1\r\nHost: x\r\n${te}\r\nContent-Length: 4\r\n\r\n${chunkOf(SMUG)}`,
      [400, 501],
    );
    add(
      `TE.TE ${name} (TE only)`,
      `POST /read HTTP/1.1\r\nHost: x\r\n${te}\r\n\r\n${chunkOf(SMUG)}`,
      // A valid spelling of chunked makes the smuggled text body: 200 then.
      [200, 400, 501],
    );
  }
  // A header that merely looks like TE is not TE: CL frames the message.
  add(
    "TE.TE Transfer_Encoding is just a header (CL frames)",
    `POST /read HTTP/1.1\r\nHost: x\r\nContent-Length: ${clte.length}\r\nTransfer_Encoding: chunked\r\n\r\n${clte}`,
    [200],
    ["/read"],
  );
}

// --- CL.0: a body where a front end saw none -----------------------------------
for (const method of ["GET", "HEAD", "OPTIONS", "DELETE", "POST"]) {
  add(
    `CL.0 ${method} with an unread body`,
    `${method} / HTTP/1.1\r\nHost: x\r\nContent-Length: ${SMUG.length}\r\n\r\n${SMUG}`,
    [200],
    ["/"],
  );
}
add(
  "CL.0 body read by the app",
  `POST /read HTTP/1.1\r\nHost: x\r\nContent-Length: ${SMUG.length}\r\n\r\n${SMUG}`,
  [200],
  ["/read"],
);
add(
  "CL.0 GET with a chunked body",
  `GET / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n${chunkOf(SMUG)}`,
  [200, 400],
);

// --- 0.CL: a Content-Length a lenient front end would have ignored -------------
{
  const bad: Array<[string, string]> = [
    ["space before colon", `Content-Length : ${SMUG.length}`],
    ["plus sign", `Content-Length: +${SMUG.length}`],
    ["hex", `Content-Length: 0x${hex(SMUG)}`],
    ["exponent", `Content-Length: ${SMUG.length}e0`],
    ["decimal point", `Content-Length: ${SMUG.length}.0`],
    ["underscore", `Content-Length: 1_0`],
    ["inner space", `Content-Length: 1 0`],
    ["negative", `Content-Length: -${SMUG.length}`],
    ["empty", `Content-Length: `],
    ["VT", `Content-Length: \x0b${SMUG.length}`],
    ["NUL", `Content-Length: ${SMUG.length}\x00`],
    ["bare LF line", `X: y\nContent-Length: ${SMUG.length}`],
    ["obs-fold", `Content-Length:\r\n ${SMUG.length}`],
    ["huge", `Content-Length: 99999999999999999999999999`],
    ["2^53+1", `Content-Length: 9007199254740993`],
  ];
  for (const [name, cl] of bad) {
    add(
      `0.CL ${name}`,
      `POST /read HTTP/1.1\r\nHost: x\r\n${cl}\r\n\r\n${SMUG}`,
      [400, 413],
    );
  }
}

// --- duplicate and list Content-Length ---------------------------------------
add(
  "duplicate CL (0 then n)",
  `POST /read HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nContent-Length: ${SMUG.length}\r\n\r\n${SMUG}`,
  [400],
);
add(
  "duplicate CL (n then 0)",
  `POST /read HTTP/1.1\r\nHost: x\r\nContent-Length: ${SMUG.length}\r\nContent-Length: 0\r\n\r\n${SMUG}`,
  [400],
);
add(
  "CL list n, 0",
  `POST /read HTTP/1.1\r\nHost: x\r\nContent-Length: ${SMUG.length}, 0\r\n\r\n${SMUG}`,
  [400],
);
add(
  "duplicate identical CL",
  `POST /read HTTP/1.1\r\nHost: x\r\nContent-Length: ${SMUG.length}\r\nContent-Length: ${SMUG.length}\r\n\r\n${SMUG}`,
  [200, 400],
  ["/read"],
);
add(
  "CL with leading zeros is decimal",
  `POST /read HTTP/1.1\r\nHost: x\r\nContent-Length: 000${SMUG.length}\r\n\r\n${SMUG}`,
  [200],
  ["/read"],
);
add(
  "CVE-2019-16785: bare LF hides a second CL",
  `POST /read HTTP/1.1\r\nHost: x\r\nContent-Length: ${SMUG.length}\r\nX: y\nContent-Length: 0\r\n\r\n${SMUG}`,
  [400],
);

// --- Expect-based ------------------------------------------------------------
add(
  "Expect: 100-continue, body sent at once, app never reads it",
  `POST / HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: ${SMUG.length}\r\n\r\n${SMUG}`,
  [200],
  ["/"],
);
add(
  "Expect: 100-continue, body read by the app",
  `POST /read HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: ${SMUG.length}\r\n\r\n${SMUG}`,
  [200],
  ["/read"],
);
add(
  "Expect: 100-continue over the body limit (413), body follows anyway",
  `POST /read HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 5000\r\n\r\n${SMUG}`,
  [413],
);
add(
  "Expect: 100-continue on a rejected head",
  `POST /read HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n${SMUG}`,
  [400],
);
add(
  "Expect: 100-continue, chunked, app never reads",
  `POST / HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nTransfer-Encoding: chunked\r\n\r\n${
    chunkOf(SMUG)
  }`,
  [200],
  ["/"],
);
add(
  "Expect on HTTP/1.0 is ignored, CL still frames",
  `POST /read HTTP/1.0\r\nExpect: 100-continue\r\nContent-Length: ${SMUG.length}\r\nConnection: keep-alive\r\n\r\n${SMUG}`,
  [200],
  ["/read"],
);
add(
  "unknown expectation",
  `POST / HTTP/1.1\r\nHost: x\r\nExpect: 100-continuex\r\nContent-Length: ${SMUG.length}\r\n\r\n${SMUG}`,
  [200, 400, 417],
  ["/"],
);

// --- chunk-size and chunk-extension tricks -------------------------------------
{
  const te = "POST /read HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n";
  const tricks: Array<[string, string]> = [
    ["bare LF after ext", `2;a\nxx\r\n0\r\n\r\n`],
    ["bare CR in ext", `2;a\rxx\r\n0\r\n\r\n`],
    ["bare LF after size", `2\nxx\r\n0\r\n\r\n`],
    ["quoted ext with CRLF", `2;a="b\r\n0\r\n\r\n"\r\nxx\r\n0\r\n\r\n`],
    ["ext without name", `2;=b\r\nxx\r\n0\r\n\r\n`],
    ["ext empty value", `2;a=\r\nxx\r\n0\r\n\r\n`],
    ["ext value with space", `2;a=b c\r\nxx\r\n0\r\n\r\n`],
    ["size 0x2", `0x2\r\nxx\r\n0\r\n\r\n`],
    ["size +2", `+2\r\nxx\r\n0\r\n\r\n`],
    ["size -2", `-2\r\nxx\r\n0\r\n\r\n`],
    ["size with leading space", ` 2\r\nxx\r\n0\r\n\r\n`],
    ["size 2_0", `2_0\r\n${"x".repeat(32)}\r\n0\r\n\r\n`],
    ["size overflows 64 bits", `10000000000000002\r\nxx\r\n0\r\n\r\n`],
    ["size overflows 2^53", `20000000000001\r\nxx\r\n0\r\n\r\n`],
    ["data longer than size", `2\r\nxxxx\r\n0\r\n\r\n`],
    ["data without CRLF", `2\r\nxx0\r\n\r\n`],
    ["data with LF only", `2\r\nxx\n0\r\n\r\n`],
    ["last chunk without final CRLF then request", `0\r\n`],
    ["empty size line", `\r\nxx\r\n0\r\n\r\n`],
  ];
  for (const [name, body] of tricks) {
    add(`chunk trick: ${name}`, te + body + SMUG, [400, 413]);
  }
  // A valid extension (and BWS) is fine: the request after is a real pipelined one.
  add(
    "chunk ext valid, next request is pipelined for real",
    te + `2;a=b;c="d e"\r\nxx\r\n0;z\r\n\r\nGET /next HTTP/1.1\r\nHost: x\r\n\r\n`,
    [200],
    ["/read", "/next"],
  );
  // RFC 9112 §7.1.1 allows BWS around ";" and "=" (waitress refuses it; either is safe).
  add(
    "chunk ext with BWS, next request is pipelined for real",
    te + `2 ; a = b\r\nxx\r\n0\r\n\r\nGET /next HTTP/1.1\r\nHost: x\r\n\r\n`,
    [200],
    ["/read", "/next"],
  );
}

// --- trailer tricks -----------------------------------------------------------
{
  const te = "POST /read HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nxx\r\n";
  add("trailer with bare LF", te + `0\r\nX: y\n\r\n${SMUG}`, [400]);
  add("trailer obs-fold", te + `0\r\nX: y\r\n z\r\n\r\n${SMUG}`, [400]);
  add("trailer is a request line", te + `0\r\n${SMUG}`, [400]);
  add("trailer space before colon", te + `0\r\nX : y\r\n\r\n${SMUG}`, [400]);
  add("trailer with NUL", te + `0\r\nX: \x00\r\n\r\n${SMUG}`, [400]);
  add("trailer bare CR", te + `0\r\nX: y\r\r\n\r\n${SMUG}`, [400]);
  add(
    "trailers with framing fields are not merged; next request is real",
    te + `0\r\nContent-Length: 50\r\nTransfer-Encoding: chunked\r\nHost: evil\r\n\r\n` +
      `GET /next HTTP/1.1\r\nHost: x\r\n\r\n`,
    [200],
    ["/read", "/next"],
  );
}

// --- HTTP/1.0 and Transfer-Encoding ------------------------------------------
add(
  "HTTP/1.0 + TE",
  `POST /read HTTP/1.0\r\nConnection: keep-alive\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n${SMUG}`,
  [400],
);
add(
  "HTTP/1.0 + TE + CL",
  `POST /read HTTP/1.0\r\nConnection: keep-alive\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n${SMUG}`,
  [400],
);

// --- connection-level: nothing after an ending message is read ------------------
add(
  "after Connection: close",
  `GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n${SMUG}`,
  [200],
  ["/"],
);
add(
  "after a non-keep-alive HTTP/1.0 request",
  `GET / HTTP/1.0\r\n\r\n${SMUG}`,
  [200],
  ["/"],
);
add(
  "after a body over maxRequestBodySize (413)",
  `POST /read HTTP/1.1\r\nHost: x\r\nContent-Length: 5000\r\n\r\n${"y".repeat(100)}${SMUG}`,
  [413],
);
add(
  "after a chunked body over maxRequestBodySize (413)",
  `POST /read HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n${
    chunkOf("z".repeat(3000))
  }${SMUG}`,
  [413],
);
add(
  "after a head over maxRequestHeaderSize (431)",
  `GET / HTTP/1.1\r\nHost: x\r\nX: ${"h".repeat(9000)}\r\n\r\n${SMUG}`,
  [431],
);
add(
  "after an invalid request line",
  `GET / HTTP/1.1 x\r\nHost: x\r\n\r\n${SMUG}`,
  [400],
);
add(
  "after an HTTP/2 preface",
  `PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n${SMUG}`,
  [400, 505],
);
add(
  "after a missing Host",
  `GET / HTTP/1.1\r\n\r\n${SMUG}`,
  [400],
);
add(
  "CVE-2024-49768: invalid request then a POST (lookahead)",
  `GET / HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n${SMUG_POST}`,
  [400],
);
add(
  "Upgrade: h2c is not honoured; a body stays a body",
  `POST /read HTTP/1.1\r\nHost: x\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQAAP__\r\nContent-Length: ${SMUG.length}\r\n\r\n${SMUG}`,
  [200],
  ["/read"],
);

/** Paths the app saw, in order. */
let seen: string[] = [];

async function app(request: Request): Promise<Response> {
  const path = new URL(request.url).pathname;
  seen.push(path);
  if (path === "/read") {
    try {
      const body = await request.arrayBuffer();
      return new Response(`read ${body.byteLength}`);
    } catch {
      return new Response("body failed", { status: 499 });
    }
  }
  return new Response("ok");
}

async function runCase(server: Server, c: Case): Promise<void> {
  seen = [];
  const client = await RawClient.connect(server.addr.port!);
  try {
    client.send(latin1(c.bytes));
    // Give the server time to serve (or refuse) everything it would, then tell it we are done.
    await client.until(() => false, 150).catch(() => {});
    if (!client.ended) client.shutdown();
    await client.closedByServer(3000);
    const heads = c.bytes.startsWith("HEAD") ? [true] : [];
    const check = checkResponses(client.received, true, heads);
    const context = `${c.name}: app saw ${JSON.stringify(seen)}; got ${
      JSON.stringify(client.text.slice(0, 400))
    }`;
    assert.equal(check.malformed, null, context);
    assert.equal(check.leftover, 0, `incomplete response; ${context}`);
    assert.ok(!seen.some((p) => p.includes("smuggled")), `smuggled request served; ${context}`);
    const expected = c.paths ?? [];
    if (c.paths) assert.deepEqual(seen, expected, context);
    else assert.ok(seen.length <= 1, `more than one request served; ${context}`);
    assert.equal(check.finals.length, Math.max(1, expected.length), `responses; ${context}`);
    assert.ok(
      c.status.includes(check.finals[0].status),
      `status ${check.finals[0].status} not in ${c.status}; ${context}`,
    );
  } finally {
    client.close();
  }
}

for (const lookahead of [0, 4]) {
  describe(`smuggling (channelRequestLookahead ${lookahead})`, () => {
    let server: Server;
    test("start", async () => {
      server = createServer(app, {
        host: "127.0.0.1",
        port: 0,
        logger: recordingLogger(),
        maxRequestBodySize: 2048,
        maxRequestHeaderSize: 8192,
        channelRequestLookahead: lookahead,
      });
      await server.ready;
      server.run();
    });
    for (const c of cases) {
      test(c.name, () => runCase(server, c));
    }
    test("a clean request still works, then close", async () => {
      await runCase(server, {
        name: "clean",
        bytes: "GET /clean HTTP/1.1\r\nHost: x\r\n\r\n",
        status: [200],
        paths: ["/clean"],
      });
      await server.close({ timeout: 1000 });
    });
  });
}
