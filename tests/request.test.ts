// The app's Request: whichever way it is built (Deno's lazily filled slots or
// the standard constructor), it must be indistinguishable from
// `new Request(url, init)` to the app.
import { test } from "node:test";
import assert from "node:assert/strict";
import { buildRequest, type RequestParts, UnsupportedMethodError } from "../src/runtime/request.ts";

const HEADERS: Array<[string, string]> = [
  ["Host", "example.test:8080"],
  ["Accept", "*/*"],
  ["X-Many", "a"],
  ["x-many", "b"],
  ["Set-Cookie", "a=1"],
  ["Set-Cookie", "b=2"],
];

/** Parts spelling `url` (scheme, authority and target). */
function at(url: string): Pick<RequestParts, "scheme" | "authority" | "target"> {
  const colon = url.indexOf("://");
  const slash = url.indexOf("/", colon + 3);
  return {
    scheme: url.slice(0, colon),
    authority: url.slice(colon + 3, slash),
    target: url.slice(slash),
  };
}

function parts(over: Partial<RequestParts> = {}): RequestParts {
  return {
    ...at("http://example.test:8080/a/./b/../c?q=1&r=%20"),
    method: "GET",
    headers: () => HEADERS.map(([n, v]) => [n, v]),
    fields: () => HEADERS.join("\n"),
    body: null,
    onCancel: () => {},
    ...over,
  };
}

function reference(p: RequestParts): Request {
  const init: RequestInit & { duplex?: "half" } = { method: p.method, headers: p.headers() };
  if (p.body) {
    init.body = p.body;
    init.duplex = "half";
  }
  return new Request(p.scheme + "://" + p.authority + p.target, init);
}

function assertSame(actual: Request, expected: Request): void {
  assert.ok(actual instanceof Request);
  assert.equal(Object.getPrototypeOf(actual), Request.prototype);
  assert.equal(actual.url, expected.url);
  assert.equal(actual.method, expected.method);
  assert.deepEqual([...actual.headers], [...expected.headers]);
  assert.deepEqual(actual.headers.getSetCookie(), expected.headers.getSetCookie());
  assert.equal(actual.headers.get("x-many"), expected.headers.get("x-many"));
  assert.equal(actual.bodyUsed, expected.bodyUsed);
  assert.equal(actual.redirect, expected.redirect);
  assert.equal(actual.mode, expected.mode);
  assert.equal(actual.credentials, expected.credentials);
  assert.equal(actual.cache, expected.cache);
  assert.equal(actual.referrer, expected.referrer);
  assert.equal(actual.keepalive, expected.keepalive);
}

test("a GET is the same Request as new Request() would make", () => {
  assertSame(buildRequest(parts()), reference(parts()));
  const req = buildRequest(parts());
  assert.equal(req.url, "http://example.test:8080/a/c?q=1&r=%20");
  assert.equal(req.body, null);
});

test("requests repeated with the same parts stay separate, and any changed part shows", () => {
  const other: Array<[string, string]> = [["Host", "example.test:8080"], ["Accept", "text/html"]];
  const variants: Array<Partial<RequestParts>> = [
    {},
    { method: "DELETE" },
    { ...at("http://example.test:8080/other?q=1") },
    { ...at("http://example.test:9090/a/./b/../c?q=1&r=%20") },
    { ...at("https://example.test:8080/a/./b/../c?q=1&r=%20") },
    { headers: () => other.map(([n, v]) => [n, v]), fields: () => other.join("\n") },
    // Rewritten headers (null fields) are always built from headers().
    { headers: () => other.map(([n, v]) => [n, v]), fields: () => null },
    {},
  ];
  for (const over of variants) {
    for (let i = 0; i < 3; i++) {
      const req = buildRequest(parts(over));
      assertSame(req, reference(parts(over)));
      // What the app does to one request never shows in the next.
      req.headers.set("accept", "changed");
      req.headers.append("x-added", "1");
    }
  }
});

test("a POST body streams through, once, and clones", async () => {
  const make = () => parts({ method: "POST", body: new Blob(["hello body"]).stream() });
  const req = buildRequest(make());
  assertSame(req, reference(make()));
  const copy = req.clone();
  assert.equal(await req.text(), "hello body");
  assert.equal(req.bodyUsed, true);
  await assert.rejects(() => req.text(), TypeError);
  assert.equal(await copy.text(), "hello body");
});

test("new Request(req) and a clone carry the same url, method and headers", () => {
  const req = buildRequest(parts({ method: "DELETE" }));
  assertSame(new Request(req), reference(parts({ method: "DELETE" })));
  assertSame(req.clone(), reference(parts({ method: "DELETE" })));
  const redirected = new Request("http://other.test/x", req);
  assert.equal(redirected.method, "DELETE");
  assert.equal(redirected.headers.get("accept"), "*/*");
});

test("headers are mutable as usual, and read from the parts at most once", () => {
  let reads = 0;
  const req = buildRequest(parts({
    headers: () => {
      reads++;
      return HEADERS.map(([n, v]) => [n, v]);
    },
  }));
  req.headers.set("X-Added", "1");
  req.headers.delete("accept");
  assert.equal(req.headers.get("x-added"), "1");
  assert.equal(req.headers.has("accept"), false);
  assert.equal(req.headers.get("host"), "example.test:8080");
  assert.equal(reads, 1);
});

test("a method new Request() keeps is kept; one it changes or refuses is refused", () => {
  const methods = ["POST", "PROPFIND", "M-SEARCH", "BREW", "get", "Patch", "TRACE", "connect"];
  for (const method of methods) {
    let expected: Request;
    try {
      expected = reference(parts({ method }));
    } catch (error) {
      // Deno and Node refuse the forbidden methods; Bun does not.
      assert.ok(error instanceof TypeError);
      assert.throws(() => buildRequest(parts({ method })), TypeError);
      continue;
    }
    if (expected.method === method) {
      assertSame(buildRequest(parts({ method })), expected);
    } else {
      // Upper-cased (Deno, Node), or an unknown method made GET (Bun).
      assert.throws(() => buildRequest(parts({ method })), UnsupportedMethodError, method);
    }
  }
});

test("an unparsable URL throws a TypeError", () => {
  assert.throws(() => buildRequest(parts(at("http://exa mple.test/"))), TypeError);
  assert.throws(() => buildRequest(parts(at("http://example.test:99999/"))), TypeError);
});

test("a URL with credentials is refused exactly as new Request() refuses it", () => {
  const p = parts({ authority: "user:secret@example.test" });
  let refused = false;
  try {
    reference(p);
  } catch (error) {
    assert.ok(error instanceof TypeError);
    refused = true;
  }
  if (refused) assert.throws(() => buildRequest(p), TypeError);
  else assertSame(buildRequest(p), reference(p));
});

test("each request has a signal of its own, the same one each time it is read", () => {
  const a = buildRequest(parts());
  const b = buildRequest(parts());
  assert.ok(a.signal instanceof AbortSignal);
  assert.equal(a.signal, a.signal);
  assert.notEqual(a.signal, b.signal);
  assert.equal(a.clone().signal.aborted, false);
  assert.ok(new Request(a).signal instanceof AbortSignal);
});

test("request.signal aborts through onCancel on Deno (and never throws elsewhere)", () => {
  let abort: (() => void) | undefined;
  const req = buildRequest(parts({ onCancel: (callback) => (abort = callback) }));
  assert.equal(req.signal.aborted, false);
  abort?.();
  if ("Deno" in globalThis) {
    assert.ok(abort, "Deno wires the signal through onCancel");
    assert.equal(req.signal.aborted, true);
    assert.equal(req.signal.reason?.name, "AbortError");
  }
});

test("the URL is serialised exactly as new Request() does, for odd targets too", () => {
  const origins = [
    "http://example.test:8080",
    "http://EXAMPLE.test:80",
    "https://[::1]:443",
    "http://a.b",
  ];
  const pieces = [
    "/",
    "a",
    "Z9",
    ".",
    "..",
    "%2e",
    "%2E",
    "%20",
    "%",
    "?",
    "#",
    "'",
    '"',
    "<",
    ">",
    "`",
    "{",
    "}",
    "|",
    "^",
    "[",
    "]",
    "!",
    "$",
    "&",
    "(",
    ")",
    "*",
    "+",
    ",",
    ";",
    "=",
    ":",
    "@",
    "~",
    "-",
    "_",
    "//",
  ];
  let seed = 12345;
  const random = (n: number) => (seed = (seed * 1103515245 + 12345) & 0x7fffffff) % n;
  for (let i = 0; i < 3000; i++) {
    let target = "/";
    for (let k = random(8); k > 0; k--) target += pieces[random(pieces.length)];
    const url = origins[random(origins.length)] + target;
    assert.equal(buildRequest(parts(at(url))).url, new Request(url).url, url);
  }
});

test("a URL made again for a repeated target follows every change of origin or target", () => {
  const urls = [
    "http://example.test:8080/same?x=1",
    "http://example.test:8080/same?x=1",
    "http://example.test:9090/same?x=1",
    "https://example.test:9090/same?x=1",
    "https://example.test:9090/same?x=2",
    "http://example.test:8080/same?x=1",
    "http://example.test:8080/a/../same?x=1",
    "http://example.test:8080/same?x=1",
  ];
  for (const url of [...urls, ...urls.reverse()]) {
    assert.equal(buildRequest(parts(at(url))).url, new Request(url).url, url);
  }
});
