// The whole-body shortcut: same bytes on the wire as reading the stream, and
// it never takes a body that must be streamed.
import { test } from "node:test";
import assert from "node:assert/strict";
import { takeStaticBody } from "../src/runtime/static_body.ts";
import { RawClient, withServer } from "./helpers/http_client.ts";

const isDeno = typeof (globalThis as { Deno?: unknown }).Deno !== "undefined";

test("takeStaticBody: whole bodies on Deno, never a stream, nothing elsewhere", async () => {
  const text = takeStaticBody(new Response("héllo"));
  const withInit = new Response(new Uint8Array([1, 2, 3]), { headers: { a: "b" } });
  const bytes = takeStaticBody(withInit);
  if (isDeno) {
    assert.deepEqual(text, new TextEncoder().encode("héllo"));
    assert.deepEqual(bytes, new Uint8Array([1, 2, 3]));
    assert.equal(withInit.bodyUsed, true, "taking it consumes it");
    assert.equal(takeStaticBody(withInit), undefined, "not twice");
  } else {
    assert.equal(text, undefined);
    assert.equal(bytes, undefined);
  }
  const streamed = new Response(new ReadableStream({ start: (c) => c.close() }));
  assert.equal(takeStaticBody(streamed), undefined);
  assert.equal(takeStaticBody(new Response(new Blob(["x"]))), undefined);
  assert.equal(takeStaticBody(new Response(null)), undefined);
  assert.equal(await streamed.text(), "");
});

test("string, bytes, JSON, Blob and stream bodies reach the client byte for byte", async () => {
  const bodies: Record<string, () => Response> = {
    "/text": () => new Response("plain ünïcode"),
    "/text-init": () => new Response("with init", { status: 201, headers: { "x-a": "1" } }),
    "/bytes": () => new Response(new Uint8Array([0, 255, 10, 13])),
    "/json": () => Response.json({ ok: true }),
    "/blob": () => new Response(new Blob(["blob body"])),
    "/empty": () => new Response(""),
  };
  await withServer((req) => bodies[new URL(req.url).pathname](), {}, async (port) => {
    const c = await RawClient.connect(port);
    for (const path of Object.keys(bodies)) c.send(`GET ${path} HTTP/1.1\r\nHost: x\r\n\r\n`);
    const rs = await c.responses(Object.keys(bodies).length);
    c.close();
    const utf8 = (s: string) => String.fromCharCode(...new TextEncoder().encode(s));
    assert.deepEqual(rs.map((r) => r.body), [
      utf8("plain ünïcode"),
      "with init",
      "\x00\xff\n\r",
      '{"ok":true}',
      "blob body",
      "",
    ]);
    assert.ok(rs.every((r) => r.framing === "length"));
    assert.equal(rs[1].status, 201);
    assert.equal(rs[1].header("x-a"), "1");
  });
});
