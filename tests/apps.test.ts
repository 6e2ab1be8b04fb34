// Real fetch-handler apps run unchanged behind the server: a Hono app (its
// streaming helper sets Transfer-Encoding itself) and a plain { fetch } object.
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { Hono } from "hono";
import { stream, streamSSE } from "hono/streaming";
// The adapters themselves (their index modules read Bun or Deno globals at load).
import { getConnInfo as bunConnInfo } from "../node_modules/hono/dist/adapter/bun/conninfo.js";
import { getConnInfo as denoConnInfo } from "../node_modules/hono/dist/adapter/deno/conninfo.js";
import { RawClient, withServer } from "./helpers/http_client.ts";

function honoApp(): Hono {
  const app = new Hono();
  app.get("/", (c) => c.text("hello from hono"));
  app.get("/json/:id", (c) => c.json({ id: c.req.param("id"), q: c.req.query("q") }));
  app.post("/echo", async (c) => c.json(await c.req.json(), 201));
  app.get("/stream", (c) =>
    stream(c, async (s) => {
      await s.write("part1,");
      await s.sleep(5);
      await s.write("part2");
    }));
  app.get("/sse", (c) =>
    streamSSE(c, async (s) => {
      await s.writeSSE({ data: "one" });
      await s.writeSSE({ data: "two" });
    }));
  app.get("/cookies", (c) => {
    c.header("set-cookie", "a=1", { append: true });
    c.header("set-cookie", "b=2", { append: true });
    return c.body(null, 204);
  });
  return app;
}

describe("apps behind the server", () => {
  test("a Hono app: text, params and query, JSON bodies, streaming, SSE, cookies", async () => {
    const app = honoApp();
    await withServer(app, {}, async (port) => {
      const c = await RawClient.connect(port);
      const body = JSON.stringify({ hello: "world" });
      c.send(
        "GET / HTTP/1.1\r\nHost: x\r\n\r\n" +
          "GET /json/42?q=yes HTTP/1.1\r\nHost: x\r\n\r\n" +
          `POST /echo HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n${body}` +
          "GET /stream HTTP/1.1\r\nHost: x\r\n\r\n" +
          "GET /sse HTTP/1.1\r\nHost: x\r\n\r\n" +
          "GET /cookies HTTP/1.1\r\nHost: x\r\n\r\n",
      );
      const rs = await c.responses(6);
      c.close();
      assert.equal(rs[0].body, "hello from hono");
      assert.deepEqual(JSON.parse(rs[1].body), { id: "42", q: "yes" });
      assert.equal(rs[2].status, 201);
      assert.deepEqual(JSON.parse(rs[2].body), { hello: "world" });
      // Hono's stream helper sets Transfer-Encoding: chunked itself; the server
      // owns framing, so exactly one transfer-encoding header goes out.
      assert.equal(rs[3].framing, "chunked");
      assert.equal(rs[3].body, "part1,part2");
      assert.equal(
        rs[3].headers.filter(([k]) => k.toLowerCase() === "transfer-encoding").length,
        1,
      );
      assert.match(rs[4].header("content-type")!, /text\/event-stream/);
      assert.equal(rs[4].body, "data: one\n\ndata: two\n\n");
      assert.equal(rs[5].status, 204);
      assert.deepEqual(
        rs[5].headers.filter(([k]) => k === "set-cookie").map(([, v]) => v),
        ["a=1", "b=2"],
      );
    });
  });

  test("Hono's getConnInfo for Bun and for Deno both find the client, on every runtime", async () => {
    const app = new Hono();
    app.get("/bun", (c) => c.json(bunConnInfo(c).remote));
    app.get("/deno", (c) => c.json(denoConnInfo(c).remote));
    await withServer(app, {}, async (port) => {
      const c = await RawClient.connect(port);
      c.send("GET /bun HTTP/1.1\r\nHost: x\r\n\r\nGET /deno HTTP/1.1\r\nHost: x\r\n\r\n");
      const [bun, deno] = await c.responses(2);
      c.close();
      const remote = JSON.parse(bun.body);
      assert.deepEqual(remote, { address: "127.0.0.1", addressType: "IPv4", port: remote.port });
      assert.ok(remote.port > 0);
      assert.deepEqual(JSON.parse(deno.body), {
        address: "127.0.0.1",
        port: remote.port,
        transport: "tcp",
      });
    });
  });

  test("Hono sees the client's address through info (its env argument)", async () => {
    const app = new Hono<{ Bindings: { remoteAddr: { hostname?: string } } }>();
    app.get("/ip", (c) => c.text(c.env.remoteAddr.hostname ?? "?"));
    await withServer(app, {}, async (port) => {
      const c = await RawClient.connect(port);
      c.send("GET /ip HTTP/1.1\r\nHost: x\r\n\r\n");
      const [r] = await c.responses(1);
      c.close();
      assert.equal(r.body, "127.0.0.1");
    });
  });

  test("a proxy app that passes the request on with fetch: its body arrives whole, and with its length where README says", async () => {
    // An upstream that needs a length (presigned uploads) refuses a chunked body.
    const upstream = (request: Request) =>
      request.text().then((body) =>
        new Response(
          `length=${request.headers.get("content-length")} ` +
            `chunked=${request.headers.has("transfer-encoding")} body=${body}`,
        )
      );
    await withServer(upstream, {}, async (upPort) => {
      const proxy = async (request: Request) => {
        const url = new URL(request.url);
        const target = `http://127.0.0.1:${upPort}${url.pathname}`;
        const response = url.pathname === "/whole"
          ? await fetch(target, { method: request.method, body: await request.arrayBuffer() })
          : await fetch(new Request(target, request));
        return new Response(await response.text());
      };
      await withServer(proxy, {}, async (port) => {
        const c = await RawClient.connect(port);
        c.send("POST /up HTTP/1.1\r\nHost: x\r\nContent-Length: 12\r\n\r\nproxied body");
        c.send("POST /whole HTTP/1.1\r\nHost: x\r\nContent-Length: 12\r\n\r\nproxied body");
        const [streamed, whole] = await c.responses(2);
        c.close();
        // Deno's fetch sends a stream of unknown length chunked (README, Runtimes).
        assert.equal(
          streamed.body,
          "Deno" in globalThis
            ? "length=null chunked=true body=proxied body"
            : "length=12 chunked=false body=proxied body",
        );
        assert.equal(whole.body, "length=12 chunked=false body=proxied body");
      });
    });
  });
});
