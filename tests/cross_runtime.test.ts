// One app and the same raw requests on Deno, Bun and Node: the bytes that
// come back must be the same on every runtime. What the runtimes' own fetch
// classes make differently (README, "Runtimes") is left out of the app, and
// the order of header lines is not compared (Bun lists Set-Cookie last).
// The transcript lives in fixtures/cross_runtime_golden.ts; after a
// deliberate change, rewrite it on one runtime and check it on the others:
//   WAITRESS_UPDATE_GOLDEN=1 deno test -A tests/cross_runtime.test.ts
import { test } from "node:test";
import assert from "node:assert/strict";
import { writeFileSync } from "node:fs";
import process from "node:process";
import { exchange, withServer } from "./helpers/http_client.ts";
import { GOLDEN } from "./fixtures/cross_runtime_golden.ts";

const encoder = new TextEncoder();
const bytes = (text: string) => encoder.encode(text);

/** A stream whose chunks are all there at once. */
const ready = (...chunks: string[]) =>
  new ReadableStream<Uint8Array>({
    start(c) {
      for (const chunk of chunks) c.enqueue(bytes(chunk));
      c.close();
    },
  });

const routes: Record<string, (request: Request) => Response | Promise<Response>> = {
  "/text": () => new Response("hello"),
  "/unicode": () => new Response("h\u00e9llo \u20ac"),
  "/init": () =>
    new Response("x", { status: 201, headers: { "x-b": "2", "accept-ranges": "none" } }),
  "/null": () => new Response(null),
  "/binary": () => new Response(new Uint8Array([0, 1, 2, 255])),
  "/typed": () => new Response("<p>", { headers: { "content-type": "text/html" } }),
  "/params": () => new Response(new URLSearchParams("a=1&b=2")),
  "/redirect": () => Response.redirect("http://example.com/x", 301),
  "/204": () => new Response(null, { status: 204, headers: { "x-a": "1" } }),
  "/304": () => new Response(null, { status: 304, headers: { etag: '"x"' } }),
  "/cookies": () => {
    const headers = new Headers();
    headers.append("set-cookie", "a=1");
    headers.append("set-cookie", "b=2");
    headers.append("X-Multi", "1");
    headers.append("x-multi", "2");
    return new Response("c", { headers });
  },
  "/status-text": () => new Response("s", { status: 418, statusText: "Teapot Here" }),
  "/own-length": () => new Response("abc", { headers: { "content-length": "3" } }),
  "/short": () => new Response(ready("abc"), { headers: { "content-length": "5" } }),
  "/long": () => new Response(ready("abc"), { headers: { "content-length": "2" } }),
  "/stream": () => new Response(ready("ab", "cd")),
  "/stream-later": () =>
    new Response(
      new ReadableStream<Uint8Array>({
        start(c) {
          c.enqueue(bytes("ab"));
          setTimeout(() => {
            c.enqueue(bytes("cd"));
            c.close();
          }, 5);
        },
      }),
    ),
  "/stream-error": () =>
    new Response(
      new ReadableStream({
        pull() {
          throw new Error("broken");
        },
      }),
    ),
  "/hop": () =>
    new Response("h", {
      headers: {
        connection: "close",
        "keep-alive": "timeout=5",
        "transfer-encoding": "chunked",
        upgrade: "h2c",
        "x-kept": "1",
      },
    }),
  "/hop-named": () =>
    new Response("n", {
      headers: { connection: "X-Drop, keep-alive", "x-drop": "1", "x-kept": "1" },
    }),
  "/426": () =>
    new Response("u", { status: 426, headers: { upgrade: "websocket", connection: "upgrade" } }),
  "/own-date": () =>
    new Response("d", { headers: { date: "Tue, 01 Jan 2030 00:00:00 GMT", server: "mine" } }),
  "/throw": () => {
    throw new Error("boom");
  },
  "/not-a-response": () => "text" as unknown as Response,
  "/error": () => Response.error(),
  "/read-twice": async (request) => {
    await request.text();
    return new Response(await request.text().then(() => "read again", (e) => e.name));
  },
  "/clone": async (request) => {
    const copy = request.clone();
    return new Response(`${await copy.text()}|${await request.text()}|${request.bodyUsed}`);
  },
  "/rebuilt": async (request) => {
    const rebuilt = new Request(request, { headers: { "x-new": "1" } });
    return new Response(
      `${rebuilt.method} ${rebuilt.url} ${[...rebuilt.headers]} ${await rebuilt.text()}`,
    );
  },
  "/echo": async (request) => {
    const headers: string[] = [];
    request.headers.forEach((value, name) => headers.push(`${name}=${value}`));
    const body = request.body === null ? null : await request.text();
    return new Response(
      JSON.stringify({ url: request.url, method: request.method, headers, body }),
    );
  },
};

const app = (request: Request) => {
  const path = new URL(request.url).pathname;
  return (routes[path] ?? routes["/echo"])(request);
};

const close = "Connection: close\r\n";
/** The routes that read a request body; "/echo" gets requests of every kind. */
const POSTED = ["/read-twice", "/clone", "/rebuilt"];
const REQUESTS: string[] = [
  ...Object.keys(routes).filter((path) => path !== "/echo" && !POSTED.includes(path)).map(
    (path) => `GET ${path} HTTP/1.1\r\nHost: h\r\n${close}\r\n`,
  ),
  `HEAD /text HTTP/1.1\r\nHost: h\r\n${close}\r\n`,
  `HEAD /stream HTTP/1.1\r\nHost: h\r\n${close}\r\n`,
  `HEAD /204 HTTP/1.1\r\nHost: h\r\n${close}\r\n`,
  "GET /text HTTP/1.0\r\n\r\n",
  "GET /stream-later HTTP/1.0\r\n\r\n",
  "GET /426 HTTP/1.0\r\n\r\n",
  `GET /426 HTTP/1.1\r\nHost: h\r\n\r\nGET /hop-named HTTP/1.1\r\nHost: h\r\n${close}\r\n`,
  `GET /echo?q=1&r=%20 HTTP/1.1\r\nHost: h:81\r\nX-B: 2\r\nx-a: 1\r\nCookie: a=1\r\n` +
  `Cookie: b=2\r\nAccept: x\r\nAccept: y\r\n${close}\r\n`,
  `POST /echo HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n${close}\r\nabc`,
  `POST /echo HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n${close}\r\n` +
  "3\r\nabc\r\n0\r\nX-Trailer: t\r\n\r\n",
  ...POSTED.map((path) =>
    `POST ${path} HTTP/1.1\r\nHost: h\r\nContent-Length: 2\r\n${close}\r\nhi`
  ),
  `PUT /echo HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\n${close}\r\n`,
  `OPTIONS * HTTP/1.1\r\nHost: h\r\n${close}\r\n`,
  `GET http://other:9/abs?x HTTP/1.1\r\nHost: h\r\n${close}\r\n`,
  `GET /a/../b/./c HTTP/1.1\r\nHost: h\r\n${close}\r\n`,
  `GET /echo HTTP/1.1\r\nHost: [::1]:5\r\n${close}\r\n`,
  `GET /echo HTTP/1.1\r\nHost: h\r\nX-Latin: caf\xe9\r\n${close}\r\n`,
  `GET /echo HTTP/1.1\r\n${close}\r\n`,
  `GET /echo HTTP/1.1\r\nHost: h\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n`,
  `GET /echo HTTP/1.1\r\nHost: h\r\nBad Name: x\r\n\r\n`,
  `GET /echo HTTP/1.1\r\nHost: h\r\nX-Fold: a\r\n b\r\n\r\n`,
  `POST /echo HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip\r\n\r\n`,
  `POST /echo HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip, chunked\r\n\r\n`,
  `POST /echo HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\nContent-Length: 2\r\n${close}\r\nhi`,
  `GET /text HTTP/1.1\r\nHost: h\r\n\r\nGET /stream HTTP/1.1\r\nHost: h\r\n${close}\r\n`,
  "GET /echo HTTP/2.0\r\nHost: h\r\n\r\n",
  "GET /echo HTTP/1.1\nHost: h\n\n",
];

/** The responses with their Dates, and the order of the first one's header lines, left out. */
function normalized(responses: string): string {
  const text = responses.replace(/\r\ndate: [^\r]*/gi, "\r\ndate: (now)");
  const end = text.indexOf("\r\n\r\n");
  if (end < 0) return text;
  const [status, ...fields] = text.slice(0, end).split("\r\n");
  return [status, ...fields.sort()].join("\r\n") + text.slice(end);
}

test("every runtime answers the same requests with the same bytes", async () => {
  const actual: Array<[string, string]> = [];
  await withServer(app, {}, async (port) => {
    for (const request of REQUESTS) {
      actual.push([request, normalized(await exchange(port, request))]);
    }
  });
  if (process.env.WAITRESS_UPDATE_GOLDEN === "1") {
    writeFileSync(
      "tests/fixtures/cross_runtime_golden.ts",
      "// Written by tests/cross_runtime.test.ts (WAITRESS_UPDATE_GOLDEN=1): the\n" +
        "// exchanges every runtime must reproduce byte for byte.\n" +
        "export const GOLDEN: Array<[string, string]> = " + JSON.stringify(actual, null, 2) +
        ";\n",
    );
    return;
  }
  assert.equal(actual.length, GOLDEN.length, "the requests changed: rewrite the transcript");
  for (let i = 0; i < actual.length; i++) {
    assert.equal(actual[i][0], GOLDEN[i][0], "the requests changed: rewrite the transcript");
    assert.equal(actual[i][1], GOLDEN[i][1], `the answer to ${JSON.stringify(actual[i][0])}`);
  }
});
