// Request bodies under conditions the other files do not cover: a request
// that asks to close the connection still has all of its body read, however
// the bytes are split across reads.
import { test } from "node:test";
import assert from "node:assert/strict";
import { RawClient, sleep, withServer } from "../helpers/http_client.ts";
import { checkResponses } from "./helpers.ts";

const echoSize = async (request: Request): Promise<Response> =>
  new Response(String((await request.arrayBuffer()).byteLength));

for (const framing of ["content-length", "chunked"] as const) {
  test(
    `a Connection: close upload (${framing}) whose body arrives in later reads reaches the app`,
    async () => {
      await withServer(echoSize, { channelTimeout: 1, cleanupInterval: 0.2 }, async (port) => {
        const size = 100_000;
        const c = await RawClient.connect(port);
        c.send(
          "POST /up HTTP/1.1\r\nHost: x\r\nConnection: close\r\n" +
            (framing === "chunked"
              ? "Transfer-Encoding: chunked\r\n\r\n"
              : `Content-Length: ${size}\r\n\r\n`),
        );
        await sleep(50); // the head is parsed before any body byte arrives
        const body = "b".repeat(size);
        c.send(framing === "chunked" ? `${size.toString(16)}\r\n${body}\r\n0\r\n\r\n` : body);
        await c.closedByServer(5000);
        const r = checkResponses(c.received, true);
        c.close();
        assert.equal(r.finals[0]?.status, 200, `got ${JSON.stringify(c.text.slice(0, 200))}`);
        assert.equal(new TextDecoder().decode(r.finals[0].body), String(size));
      });
    },
  );
}

test("an HTTP/1.0 upload split across reads reaches the app", async () => {
  await withServer(echoSize, { channelTimeout: 1, cleanupInterval: 0.2 }, async (port) => {
    const c = await RawClient.connect(port);
    c.send("POST /up HTTP/1.0\r\nContent-Length: 10\r\n\r\n01234");
    await sleep(50);
    c.send("56789");
    await c.closedByServer(5000);
    const r = checkResponses(c.received, true);
    c.close();
    assert.equal(r.finals[0]?.status, 200, `got ${JSON.stringify(c.text.slice(0, 200))}`);
    assert.equal(new TextDecoder().decode(r.finals[0].body), "10");
  });
});

test("the same uploads on a keep-alive connection work (control)", async () => {
  await withServer(echoSize, {}, async (port) => {
    const c = await RawClient.connect(port);
    c.send("POST /up HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n01234");
    await sleep(50);
    c.send("56789");
    const [r] = await c.responses(1);
    c.close();
    assert.equal(r.status, 200);
    assert.equal(r.body, "10");
  });
});
