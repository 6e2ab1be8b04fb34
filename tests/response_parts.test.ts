// The whole-body shortcut: same bytes on the wire as reading the stream, and
// it never takes a body that must be streamed.
import { test } from "node:test";
import assert from "node:assert/strict";
import {
  impliedType,
  responseFields,
  STATIC_BODIES,
  takeStaticBody,
} from "../src/runtime/response_parts.ts";
import { RUNTIME } from "../src/runtime/which.ts";
import { release } from "../src/runtime/output_queue.ts";
import { RawClient, withServer } from "./helpers/http_client.ts";
import { BLOB_ENDS_LATE, RUNTIME_VERSION } from "./helpers/socket_util.ts";

test("the whole-body shortcut is taken on the runtime versions known to allow it", () => {
  // A runtime that changes its internals turns it off (every body is then
  // read as a stream, slower but the same on the wire): this says so.
  const [major, minor] = RUNTIME_VERSION;
  const expected = RUNTIME === "node"
    ? major < 24
    : RUNTIME === "deno"
    ? major > 2 || (major === 2 && minor >= 8)
    : true;
  assert.equal(STATIC_BODIES, expected, `${RUNTIME} ${major}.${minor}`);
});

/** Where there is no shortcut: nothing is taken, and the body is still there to read. */
async function nothingTaken(): Promise<void> {
  for (
    const response of [new Response("text"), new Response(new Uint8Array([1])), Response.json(1)]
  ) {
    assert.equal(takeStaticBody(response), undefined);
    assert.equal(response.bodyUsed, false);
    assert.ok((await response.arrayBuffer()).byteLength > 0);
  }
}

test("takeStaticBody: whole bodies on Deno, Bun and Node, never a stream", async () => {
  if (!STATIC_BODIES) return await nothingTaken();
  const text = takeStaticBody(new Response("héllo"));
  const source = new Uint8Array([1, 2, 3]);
  const withInit = new Response(source, { headers: { a: "b" } });
  source[0] = 9;
  const bytes = takeStaticBody(withInit);
  assert.deepEqual(text, new TextEncoder().encode("héllo"));
  assert.deepEqual(
    bytes,
    new Uint8Array([1, 2, 3]),
    "the bytes as they were when the Response was made",
  );
  assert.equal(withInit.bodyUsed, true, "taking it consumes it");
  assert.equal(takeStaticBody(withInit), undefined, "not twice");
  const streamed = new Response(new ReadableStream({ start: (c) => c.close() }));
  assert.equal(takeStaticBody(streamed), undefined);
  assert.equal(takeStaticBody(new Response(new Blob(["x"]))), undefined);
  assert.equal(takeStaticBody(new Response(null)), undefined);
  assert.equal(await streamed.text(), "");
});

test("takeStaticBody: short texts in a row each come back as their own bytes", () => {
  const texts = [
    "hello",
    "hello",
    "jello",
    "",
    "h\u00e9llo",
    "h\u00e9llo",
    "hello",
    "x".repeat(2000),
  ];
  for (const text of texts) {
    const bytes = takeStaticBody(new Response(text));
    if (bytes === undefined) continue; // no shortcut on this runtime
    assert.equal(new TextDecoder().decode(bytes), text);
  }
});

test("takeStaticBody leaves every stream body unread, whatever the status text", async () => {
  const chunks = () =>
    new ReadableStream<Uint8Array>({
      start(c) {
        c.enqueue(new Uint8Array([65]));
        c.enqueue(new Uint8Array([66]));
        c.close();
      },
    });
  async function* generate() {
    yield new Uint8Array([65]);
    yield new Uint8Array([66]);
  }
  const responses = [
    new Response(chunks()),
    new Response(chunks(), { status: 201, statusText: "Created with a long reason phrase" }),
    // A status text built from UTF-16 text is stored two bytes a character on Bun.
    new Response(chunks(), { statusText: "é-reason".slice(2) }),
    new Response(generate() as unknown as BodyInit),
  ];
  // Beyond Latin-1: only Bun takes such a status text.
  for (const statusText of ["reason \u20ac", "\u20ac"]) {
    try {
      responses.push(new Response(chunks(), { statusText }));
    } catch {
      // not a ByteString: Deno and Node refuse it
    }
  }
  for (const response of responses) {
    assert.equal(takeStaticBody(response), undefined);
    assert.equal(response.bodyUsed, false);
    assert.equal(await response.text(), "AB");
  }
});

test("takeStaticBody: JSON, status text, a touched body; a locked body stays for the caller", async () => {
  if (!STATIC_BODIES) return await nothingTaken();
  // A taken string body may be a view of a shared buffer: decode it at once.
  const text = (bytes: Uint8Array | undefined) =>
    bytes === undefined ? undefined : new TextDecoder().decode(bytes);
  const json = text(takeStaticBody(Response.json({ a: 1 })));
  const reason = text(takeStaticBody(
    new Response("a body longer than its reason twice", {
      status: 404,
      statusText: "Not Here",
    }),
  ));
  // As long as its reason: the body is still told from the reason's bytes.
  const short = text(takeStaticBody(
    new Response("Not found", { status: 404, statusText: "Not Found" }),
  ));
  const widened = text(
    takeStaticBody(new Response("ok", { statusText: "D\u00e9j\u00e0 \u20ac".slice(0, 4) })),
  );
  const touched = new Response("touched");
  assert.ok(touched.body !== null);
  const taken = text(takeStaticBody(touched));
  assert.equal(json, '{"a":1}');
  assert.equal(reason, "a body longer than its reason twice");
  assert.equal(short, "Not found");
  assert.equal(widened, "ok");
  if (taken !== undefined) assert.equal(taken, "touched");
  else assert.equal(await touched.text(), "touched");

  const locked = new Response("locked");
  const reader = locked.body!.getReader();
  assert.equal(takeStaticBody(locked), undefined);
  assert.equal(locked.body!.locked, true, "still locked: the caller answers it as used");
  reader.releaseLock();
});

test("a large whole body is a copy the server may free once sent; the app's buffer is untouched", async () => {
  if (!STATIC_BODIES) return await nothingTaken();
  const source = new Uint8Array(64 * 1024).fill(7);
  const response = new Response(source);
  const bytes = takeStaticBody(response)!;
  assert.equal(bytes.byteLength, source.byteLength);
  assert.notEqual(bytes.buffer, source.buffer, "a copy made with the Response");
  release(bytes);
  if (RUNTIME === "bun" && "transfer" in ArrayBuffer.prototype) {
    assert.equal(bytes.byteLength, 0, "freed at once: bytes() gave a copy of its own");
  }
  assert.equal(source.byteLength, 64 * 1024);
  assert.ok(source.every((b) => b === 7));
  assert.equal(response.bodyUsed, true);
  await assert.rejects(response.arrayBuffer(), "its body stays used, not emptied");
});

test("taking and freeing a clone's body leaves the original's, and the other way round", async () => {
  // Deno's clone() shares a whole body's bytes with the clone: freeing them
  // with one would empty the other (a cached response, served as clones).
  for (const size of [64 * 1024, 1024 * 1024]) {
    for (const served of ["clone", "original"]) {
      const original = new Response(new Uint8Array(size).fill(9));
      const clone = original.clone();
      const [sent, kept] = served === "clone" ? [clone, original] : [original, clone];
      const bytes = takeStaticBody(sent);
      if (bytes !== undefined) release(bytes);
      const left = new Uint8Array(await kept.arrayBuffer());
      assert.equal(left.byteLength, size, `${served} served, ${size} bytes`);
      assert.ok(left.every((b) => b === 9));
    }
  }
});

test("a cached response served as clones, and kept while its clones go out, stays whole", async () => {
  const size = 64 * 1024;
  const cached = new Response(new Uint8Array(size).fill(0x61));
  const kept: Response[] = [];
  await withServer(
    (req) => {
      if (new URL(req.url).pathname === "/clone") return cached.clone();
      // Served, while a clone is kept (the Cache API way: put a clone, return the response).
      const fresh = new Response(new Uint8Array(size).fill(0x62));
      kept.push(fresh.clone());
      return fresh;
    },
    {},
    async (port) => {
      const c = await RawClient.connect(port);
      for (const path of ["/clone", "/clone", "/fresh", "/clone"]) {
        c.send(`GET ${path} HTTP/1.1\r\nHost: x\r\n\r\n`);
      }
      const rs = await c.responses(4);
      c.close();
      rs.forEach((r, k) => {
        assert.equal(r.status, 200, `response ${k}`);
        assert.equal(r.body, (k === 2 ? "b" : "a").repeat(size), `response ${k}`);
      });
    },
  );
  assert.equal(await cached.text(), "a".repeat(size));
  assert.equal(await kept[0].text(), "b".repeat(size));
});

test("large bodies made from one app buffer reach the client whole, request after request", async () => {
  // 64 KiB goes out merged with its head, 300 KiB as it is (larger than a merge buffer).
  const sizes = [64 * 1024, 300 * 1024, 64 * 1024, 300 * 1024, 64 * 1024];
  const shared = new Uint8Array(300 * 1024).map((_, i) => i % 251);
  await withServer(
    (req) => new Response(shared.subarray(0, Number(new URL(req.url).pathname.slice(1)))),
    {},
    async (port) => {
      const c = await RawClient.connect(port);
      for (const n of sizes) c.send(`GET /${n} HTTP/1.1\r\nHost: x\r\n\r\n`);
      const rs = await c.responses(sizes.length);
      c.close();
      rs.forEach((r, k) => {
        assert.equal(r.body.length, sizes[k]);
        for (let i = 0; i < r.body.length; i += 997) {
          assert.equal(r.body.charCodeAt(i), i % 251, `response ${k}, byte ${i}`);
        }
      });
      assert.ok(shared.every((b, i) => b === i % 251), "the app's buffer is untouched");
    },
  );
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
    assert.ok(rs.every((r, i) => r.framing === "length" || (BLOB_ENDS_LATE && i === 4)));
    assert.equal(rs[1].status, 201);
    assert.equal(rs[1].header("x-a"), "1");
  });
});

test("responseFields gives what headers.forEach gives, for responses made every way", () => {
  const standard = (response: Response) => {
    const fields: string[] = [];
    response.headers.forEach((value, name) => fields.push(name, value));
    return fields;
  };
  const names = ["X-Zed", "x-zed", "Set-Cookie", "set-cookie", "Content-Type", "a", "B", "vary"];
  let seed = 7;
  const random = (n: number) => (seed = (seed * 1103515245 + 12345) % 2147483648) % n;
  const makers: Array<() => Response> = [
    () => new Response("text"),
    () => Response.json({ ok: true }),
    () => new Response(new Uint8Array(2)),
    () => new Response(null, { status: 204 }),
    () => new Response("x", { status: 404, statusText: "Gone Fishing" }),
    // Lazily held bodies whose Response was touched in other ways first.
    () => {
      const response = new Response("x");
      void response.headers;
      return response;
    },
    () => {
      const response = new Response("x");
      void response.body;
      return response;
    },
    () => {
      const response = new Response("x");
      void [response.bodyUsed, response.status, response.statusText];
      return response;
    },
    () => new Response("x").clone(),
  ];
  for (let round = 0; round < 300; round++) {
    const init: Array<[string, string]> = [];
    for (let k = random(5); k > 0; k--) {
      init.push([names[random(names.length)], ` v${random(100)} `]);
    }
    makers.push(() => new Response(round % 2 ? "body" : null, { headers: init }));
    makers.push(() => {
      const response = round % 3 ? new Response("lazy") : Response.json([round]);
      for (const [name, value] of init) response.headers.append(name, value);
      if (round % 5 === 0) response.headers.delete("content-type");
      return response;
    });
  }
  for (const make of makers) {
    assert.deepEqual(responseFields(make()), standard(make()));
  }
});

test("a string body goes out with the type the fetch standard gives it, on every runtime", async () => {
  // Bun leaves it out of the Response's fields (its own server adds it when
  // sending): a client must get it all the same, where the other fields go.
  const bodies: Record<string, () => Response> = {
    "/text": () => new Response("hello"),
    "/unicode": () => new Response("h\u00e9llo \u20ac"),
    "/init": () => new Response("x", { headers: { "x-a": "1", "accept-ranges": "none" } }),
    "/clone": () => new Response("cloned").clone(),
    "/typed": () => new Response("<p>", { headers: { "content-type": "text/html" } }),
    "/binary": () => new Response(new Uint8Array([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a])),
    "/nul": () => new Response(new Uint8Array([104, 0, 105])),
    "/stream": () =>
      new Response(
        new ReadableStream({
          start(c) {
            c.enqueue(new Uint8Array([104, 105]));
            c.close();
          },
        }),
      ),
  };
  await withServer((req) => bodies[new URL(req.url).pathname](), {}, async (port) => {
    const c = await RawClient.connect(port);
    const paths = Object.keys(bodies);
    for (const path of paths) c.send(`GET ${path} HTTP/1.1\r\nHost: x\r\n\r\n`);
    const rs = await c.responses(paths.length);
    c.close();
    const h = await RawClient.connect(port);
    h.send("HEAD /text HTTP/1.1\r\nHost: x\r\n\r\n");
    const [headResponse] = await h.responses(1, 5000, true);
    h.close();
    const types = Object.fromEntries(paths.map((path, i) => [path, rs[i].header("content-type")]));
    const text = "text/plain;charset=UTF-8";
    assert.deepEqual(types, {
      "/text": text,
      "/unicode": text,
      "/init": text,
      "/clone": text,
      "/typed": "text/html",
      "/binary": undefined,
      "/nul": undefined,
      "/stream": undefined,
    });
    assert.equal(headResponse.header("content-type"), text, "HEAD gets it as GET does");
    assert.deepEqual(
      rs[2].headers.map(([name]) => name).filter((name) => name !== "date" && name !== "server"),
      ["accept-ranges", "content-type", "x-a", "content-length"],
      "in the place headers.forEach gives it",
    );
  });
});

test("impliedType: on Bun, text for a body that reads as UTF-8 text; elsewhere the fields have it", () => {
  const bytes = (...values: number[]) => new Uint8Array(values);
  const long = new Uint8Array(2048).fill(97);
  long.set([0xe2, 0x82, 0xac], 1022); // a character across the part looked at
  const cases: Array<[Uint8Array, boolean]> = [
    [new TextEncoder().encode("plain\ttext\r\n\f\x1b[0m h\u00e9 \u20ac \u{1f600}"), true],
    [long, true],
    [long.subarray(0, 1024), false], // the same character cut off: not UTF-8
    [bytes(104, 0, 105), false],
    [bytes(0x7f, 0x1c), false],
    [bytes(0xc0, 0x80), false], // an overlong form
    [bytes(0xe2, 0x28, 0xa1), false],
    [bytes(0xff), false],
    [new Uint8Array(0), false],
  ];
  for (const [body, text] of cases) {
    const expected = RUNTIME === "bun" && text ? "text/plain;charset=UTF-8" : null;
    assert.equal(impliedType(body), expected, JSON.stringify([...body.subarray(0, 8)]));
  }
});
