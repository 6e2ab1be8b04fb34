// The response head encoder: every part of the spec shows in the bytes, and
// the cache of the last head never hands out a stale one.
import { test } from "node:test";
import assert from "node:assert/strict";
import { encodeHead, type HeadSpec, inspectHeaders } from "../src/response.ts";

const decode = (bytes: Uint8Array) => new TextDecoder("latin1").decode(bytes);

function spec(over: Partial<HeadSpec> = {}, fields = ["content-type", "text/plain"]): HeadSpec {
  return {
    version: "1.1",
    status: 200,
    statusText: "",
    facts: inspectHeaders(fields),
    framing: "length",
    length: 5,
    close: false,
    keepAlive10: false,
    ident: "waitress",
    ...over,
  };
}

test("encodeHead writes every part, and a changed part is never served from the cache", () => {
  const cases: Array<[HeadSpec, RegExp]> = [
    [
      spec(),
      /^HTTP\/1\.1 200 OK\r\ncontent-type: text\/plain\r\ndate: .+ GMT\r\nserver: waitress\r\ncontent-length: 5\r\n\r\n$/,
    ],
    [spec({ length: 6 }), /\r\ncontent-length: 6\r\n\r\n$/],
    [spec({}, ["content-type", "text/html"]), /\r\ncontent-type: text\/html\r\n/],
    [spec({}, ["content-type", "text/plain", "x-a", "1"]), /\r\nx-a: 1\r\ndate: /],
    [spec({ status: 201 }), /^HTTP\/1\.1 201 Created\r\n/],
    [spec({ statusText: "Fine" }), /^HTTP\/1\.1 200 Fine\r\n/],
    [
      spec({ version: "1.0", keepAlive10: true }),
      /^HTTP\/1\.0 200 OK\r\n.*connection: keep-alive\r\n\r\n$/s,
    ],
    [spec({ close: true }), /\r\nconnection: close\r\n\r\n$/],
    [
      spec({ framing: "chunked", length: -1 }),
      /server: waitress\r\ntransfer-encoding: chunked\r\n\r\n$/,
    ],
    [spec({ ident: "" }), /GMT\r\ncontent-length: 5\r\n\r\n$/],
    [
      spec({}, ["date", "Mon, 01 Jan 2024 00:00:00 GMT"]),
      /^HTTP\/1\.1 200 OK\r\ndate: Mon, 01 Jan 2024 00:00:00 GMT\r\nserver: waitress\r\n/,
    ],
    [
      spec({}, ["server", "app"]),
      /^HTTP\/1\.1 200 OK\r\nserver: app\r\ndate: [^\r]+\r\ncontent-length/,
    ],
    [
      spec({}, ["connection", "close", "content-length", "5", "x-b", "é"]),
      /^HTTP\/1\.1 200 OK\r\nx-b: é\r\ndate: /,
    ],
  ];
  // Each case right after the first one and right after itself.
  for (const [made, expected] of cases) {
    for (const before of [cases[0][0], made]) {
      encodeHead(before);
      const text = decode(encodeHead(made, new Uint8Array([104, 101, 108, 108, 111])));
      assert.ok(text.endsWith("\r\n\r\nhello"), text);
      assert.match(text.slice(0, -5), expected);
    }
  }
});

test("an equal head and body is served from the last one made, any other body never", () => {
  const bytes = (text: string) => new TextEncoder().encode(text);
  const steps: Array<Uint8Array | undefined> = [
    bytes("hello"),
    bytes("hello"),
    bytes("jello"),
    bytes("hello"),
    bytes("hell"),
    undefined,
    undefined,
    bytes(""),
    bytes("x".repeat(300)),
    bytes("x".repeat(300)),
    bytes("hello"),
  ];
  let previous: Uint8Array | null = null;
  let previousText = "";
  for (const body of steps) {
    const out = encodeHead(spec(), body);
    const text = decode(out);
    const bodyText = body === undefined ? "" : decode(body);
    assert.ok(text.endsWith("\r\n\r\n" + bodyText), text);
    assert.equal(text.indexOf("\r\n\r\n") + 4, out.byteLength - bodyText.length);
    // The same bytes again only for the same small body.
    if (previous !== null && out === previous) {
      assert.equal(text, previousText);
      assert.ok(bodyText.length <= 256);
    }
    // What was handed out is never changed by a later response.
    if (previous !== null) assert.equal(decode(previous), previousText);
    previous = out;
    previousText = text;
  }
  const a = encodeHead(spec(), bytes("same"));
  assert.equal(encodeHead(spec(), bytes("same")), a);
});

test("inspectHeaders drops hop-by-hop and framing fields and reports what they said", () => {
  const facts = inspectHeaders([
    "a",
    "1",
    "connection",
    "Close",
    "content-length",
    "12",
    "keep-alive",
    "x",
    "b",
    "2",
    "transfer-encoding",
    "chunked",
    "date",
    "d",
    "server",
    "s",
  ]);
  assert.deepEqual(facts.fields, ["a", "1", "b", "2", "date", "d", "server", "s"]);
  assert.equal(facts.appClose, true);
  assert.equal(facts.appLength, 12);
  assert.equal(facts.hasDate, true);
  assert.equal(facts.hasServer, true);
  const plain = ["content-type", "text/plain"];
  const kept = inspectHeaders(plain);
  assert.deepEqual(kept.fields, ["content-type", "text/plain"], "nothing dropped");
  // The caller may fill its list again for the next response (Bun's list is reused).
  plain[1] = "text/html";
  assert.deepEqual(kept.fields, ["content-type", "text/plain"], "a copy is kept");
  assert.deepEqual(inspectHeaders(plain).fields, ["content-type", "text/html"]);
  assert.equal(inspectHeaders(["content-length", "1x"]).appLength, -1);
  // Empty, or more digits than a safe integer holds: not a length.
  assert.equal(inspectHeaders(["content-length", ""]).appLength, -1);
  assert.equal(inspectHeaders(["content-length", "1234567890123456"]).appLength, -1);
  assert.equal(inspectHeaders(["content-length", "123456789012345"]).appLength, 123456789012345);
});

test("inspectHeaders drops TE, Trailer and Proxy-Connection, and keeps other names of their lengths", () => {
  const facts = inspectHeaders([
    "ab",
    "2",
    "proxy-connection",
    "keep-alive",
    "te",
    "trailers",
    "trailer",
    "x-t",
    "trailed",
    "7",
    "x-request-id-abc",
    "16",
  ]);
  assert.deepEqual(facts.fields, ["ab", "2", "trailed", "7", "x-request-id-abc", "16"]);
});

test("inspectHeaders gives equal lists the same facts, and a list that differs its own", () => {
  const list = () => ["content-type", "text/html", "connection", "close"];
  const first = inspectHeaders(list());
  assert.equal(inspectHeaders(list()), first, "equal strings: the same facts");
  assert.deepEqual(first.fields, ["content-type", "text/html"]);
  assert.equal(first.appClose, true);
  const changed = [
    ["content-type", "text/html", "connection", "keep-alive"],
    ["content-type", "text/html", "Connection", "close"],
    ["content-type", "text/html", "connection", "close", "date", "d"],
    ["content-type", "text/html", "content-length", "close"],
  ];
  for (const fields of changed) {
    const facts = inspectHeaders(fields);
    assert.notEqual(facts, first);
    inspectHeaders(list());
  }
  assert.equal(inspectHeaders(changed[0]).appClose, false);
  assert.equal(inspectHeaders(changed[2]).hasDate, true);
  assert.equal(inspectHeaders(changed[3]).appLength, -1);
  assert.equal(inspectHeaders(["x", "a\nb"]).invalid, "x");
  assert.equal(inspectHeaders(["x", "a\nb"]).invalid, "x", "still invalid when repeated");
  assert.equal(inspectHeaders(["x", "ab"]).invalid, null);
});

test("Upgrade is sent with its connection option; fields the app's Connection names are not", () => {
  const named = inspectHeaders([
    "connection",
    "X-Drop , keep-alive",
    "connection",
    "close, x-other",
    "upgrade",
    "websocket",
    "x-drop",
    "1",
    "x-kept",
    "2",
    "x-other",
    "3",
  ]);
  assert.deepEqual(named.fields, ["upgrade", "websocket", "x-kept", "2"]);
  assert.equal(named.hasUpgrade, true);
  assert.equal(named.appClose, true);
  const upgrade = ["upgrade", "websocket"];
  const cases: Array<[Partial<HeadSpec>, string]> = [
    [{}, "connection: upgrade\r\n\r\n"],
    [{ close: true }, "connection: upgrade, close\r\n\r\n"],
    [{ version: "1.0", keepAlive10: true }, "connection: upgrade, keep-alive\r\n\r\n"],
  ];
  for (const [over, end] of cases) {
    const text = decode(encodeHead(spec({ status: 426, ...over }, upgrade)));
    assert.ok(text.includes("\r\nupgrade: websocket\r\n"), text);
    assert.ok(text.endsWith(end), text);
  }
  assert.ok(!decode(encodeHead(spec())).includes("connection"), "none without Upgrade");
});
