// The body bytes the app gets are its own: it may detach their buffers (a
// byte stream's enqueue does, as do postMessage and structuredClone with a
// transfer list) or write over them, and the connection goes on as if it had
// not; and their buffers hold nothing but that body (and zeros).
import { test } from "node:test";
import assert from "node:assert/strict";
import { RawClient, sleep, withServer } from "./helpers/http_client.ts";

/**
 * Reads the body chunk by chunk; checks each chunk's buffer holds only the
 * chunk (and zeros), then overwrites the chunk and detaches its buffer.
 * Reads the headers only after that. Answers `bytes=N clean=B tag=T`.
 */
async function takeBody(request: Request): Promise<Response> {
  let bytes = 0;
  let clean = true;
  const reader = request.body!.getReader();
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    bytes += value.byteLength;
    const all = new Uint8Array(value.buffer);
    for (let i = 0; i < all.length; i++) {
      const inside = i >= value.byteOffset && i < value.byteOffset + value.byteLength;
      if (!inside && all[i] !== 0) clean = false;
    }
    value.fill(0x21);
    const taken = value.buffer as ArrayBuffer;
    structuredClone(taken, { transfer: [taken] });
    assert.equal(value.byteLength, 0, "the buffer was detached");
  }
  return new Response(`bytes=${bytes} clean=${clean} tag=${request.headers.get("x-tag")}`);
}

const app = (request: Request): Promise<Response> | Response =>
  request.method === "POST"
    ? takeBody(request)
    : new Response(`next ${new URL(request.url).pathname}`);

const NEXT = "GET /next HTTP/1.1\r\nHost: x\r\n\r\n";

function post(length: number): string {
  return `POST /up HTTP/1.1\r\nHost: x\r\nX-Tag: t1\r\nContent-Length: ${length}\r\n\r\n`;
}

const cases: Array<{ name: string; parts: string[]; bytes: number }> = [
  {
    name: "a chunked body and the next request in one write",
    parts: [
      "POST /up HTTP/1.1\r\nHost: x\r\nX-Tag: t1\r\nTransfer-Encoding: chunked\r\n\r\n" +
      "5\r\nhello\r\n5\r\nworld\r\n0\r\n\r\n" + NEXT,
    ],
    bytes: 10,
  },
  {
    name: "a small body and the next request in one write",
    parts: [post(5) + "hello" + NEXT],
    bytes: 5,
  },
  {
    name: "a 6000-byte body and the next request in one write",
    parts: [post(6000) + "b".repeat(6000) + NEXT],
    bytes: 6000,
  },
  {
    name: "a head, then a 200 KB body in its own writes, then the next request",
    parts: [post(200_000), "b".repeat(200_000), NEXT],
    bytes: 200_000,
  },
  {
    name: "a chunked head, then one 200 KB chunk in its own writes, then the next request",
    parts: [
      "POST /up HTTP/1.1\r\nHost: x\r\nX-Tag: t1\r\nTransfer-Encoding: chunked\r\n\r\n",
      (200_000).toString(16) + "\r\n",
      "b".repeat(200_000),
      "\r\n0\r\n\r\n",
      NEXT,
    ],
    bytes: 200_000,
  },
];

for (const c of cases) {
  test(`the app may detach and overwrite its body bytes: ${c.name}`, async () => {
    await withServer(app, {}, async (port) => {
      const client = await RawClient.connect(port);
      try {
        for (const part of c.parts) {
          client.send(part);
          if (c.parts.length > 1) await sleep(30); // separate reads
        }
        const responses = await client.responses(2);
        assert.equal(responses.length, 2, client.text.slice(0, 400));
        assert.equal(responses[0].status, 200);
        assert.equal(responses[0].body, `bytes=${c.bytes} clean=true tag=t1`);
        assert.equal(responses[1].status, 200);
        assert.equal(responses[1].body, "next /next");
      } finally {
        client.close();
      }
    });
  });
}
