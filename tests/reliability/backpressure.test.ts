// A client that pipelines requests for large responses and does not read
// them must not have them all answered into the server's memory: once more
// than outbufHighWatermark waits for it, the next request is neither parsed
// nor (with a lookahead) started until the client has taken the output.
// Once it reads, every response arrives, complete and in order.
import { test } from "node:test";
import assert from "node:assert/strict";
import { latin1, parseResponses, RawClient, sleep, withServer } from "../helpers/http_client.ts";

const REQUESTS = 60;
const BODY = new Uint8Array(1024 * 1024).fill(0x61); // 1 MiB

for (const lookahead of [0, 10]) {
  test(`${REQUESTS} pipelined 1 MiB responses to a client not reading (lookahead ${lookahead}): answered only as it reads`, async () => {
    let calls = 0;
    const app = (request: Request) => {
      calls++;
      return new Response(BODY, { headers: { "x-path": new URL(request.url).pathname } });
    };
    const options = { outbufHighWatermark: 1024 * 1024, channelRequestLookahead: lookahead };
    await withServer(app, options, async (port) => {
      const c = await RawClient.connect(port);
      try {
        c.socket.pause();
        let batch = "";
        for (let i = 0; i < REQUESTS; i++) batch += `GET /${i} HTTP/1.1\r\nHost: x\r\n\r\n`;
        c.send(latin1(batch));
        // Let the server answer what it will: the kernel's buffers (a few
        // MiB each way on loopback) and the watermark, not 60 MiB.
        let seen = -1;
        for (let waited = 0; waited < 3000 && calls !== seen; waited += 300) {
          seen = calls;
          await sleep(300);
        }
        assert.ok(
          calls < REQUESTS / 2,
          `${calls} of ${REQUESTS} answered while the client read nothing`,
        );
        c.socket.resume();
        await c.until(() => c.receivedBytes >= REQUESTS * BODY.byteLength, 20_000);
        await c.until(() => parseResponses(c.received).length === REQUESTS);
        const responses = parseResponses(c.received);
        assert.equal(responses.length, REQUESTS);
        responses.forEach((r, i) => {
          assert.equal(r.status, 200);
          assert.equal(r.header("x-path"), `/${i}`);
          assert.equal(r.body.length, BODY.byteLength);
        });
        assert.equal(calls, REQUESTS);
      } finally {
        c.close();
      }
    });
  });
}

test("requests held back by the output are answered after the client's FIN too", async () => {
  const app = (request: Request) =>
    new Response(BODY, { headers: { "x-path": new URL(request.url).pathname } });
  await withServer(app, { outbufHighWatermark: 1024 * 1024 }, async (port) => {
    const c = await RawClient.connect(port);
    try {
      c.socket.pause();
      let batch = "";
      for (let i = 0; i < 8; i++) batch += `GET /${i} HTTP/1.1\r\nHost: x\r\n\r\n`;
      c.send(latin1(batch));
      c.shutdown(); // all sent; still reading
      await sleep(300);
      c.socket.resume();
      await c.closedByServer(20_000);
      const responses = parseResponses(c.received);
      assert.deepEqual(
        responses.map((r) => r.header("x-path")),
        [0, 1, 2, 3, 4, 5, 6, 7].map((i) => `/${i}`),
      );
      for (const r of responses) assert.equal(r.body.length, BODY.byteLength);
    } finally {
      c.close();
    }
  });
});
