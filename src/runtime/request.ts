/**
 * Builds the `Request` handed to the app. The portable way is
 * `new Request(url, init)`, and it is the dearest part of serving a small
 * request, so where a cheaper way gives the same `Request` it is taken:
 *
 * - Deno's `Request` is written in JavaScript; its constructor re-validates
 *   every header and converts the init dictionary. `Deno.serve` avoids it by
 *   filling a branded `Request`'s internal slots with a lazily read inner
 *   request. This does the same with the parser's already-validated fields:
 *   a genuine `Request` (brand, prototype, internal slots), so `clone()`,
 *   `new Request(req)`, `fetch(req)` and the body methods behave exactly as
 *   usual, while the header list is only built when the app reads it.
 * - Bun converts an init's header list far more slowly than it appends to a
 *   fresh Request's own headers, so the fields are appended.
 * - Node's (undici's) constructor makes a costly `AbortController` for every
 *   request: its fields are filled directly, the signal made when read (see
 *   `undiciShortcut`).
 *
 * Each shortcut is only taken after a self-test against the real
 * constructor on this very runtime; if it ever differs, it is never taken.
 * @module
 */

import { RUNTIME } from "./which.ts";

/** What a request is built from. */
export interface RequestParts {
  /**
   * The URL in parts, not yet parsed (parsing may throw a TypeError):
   * `scheme://authority` followed by `target`, the path and query as sent.
   */
  scheme: string;
  /** See `scheme`. */
  authority: string;
  /** See `scheme`. */
  target: string;
  /** The method as sent. */
  method: string;
  /** The header lines, [name as sent, value], already validated; called at most once. */
  headers(): Array<[string, string]>;
  /**
   * The field lines as sent, when `headers()` is made of them alone (equal
   * texts give equal headers); null when they were rewritten.
   */
  fields(): string | null;
  /** The body, or null (never for GET and HEAD). */
  body: ReadableStream<Uint8Array> | null;
  /**
   * Registers a callback to run when the client goes away; used for the
   * Request's `signal` where the runtime lets us wire it lazily.
   */
  onCancel(abort: () => void): void;
}

/**
 * Methods the fetch standard stores as given (no normalisation, never
 * forbidden): GET, HEAD, POST, PUT, DELETE, OPTIONS, PATCH. Compared in a
 * switch, cheaper per request than a Set's hash lookup.
 */
function isPlainMethod(method: string): boolean {
  switch (method) {
    case "GET":
    case "HEAD":
    case "POST":
    case "PUT":
    case "DELETE":
    case "OPTIONS":
    case "PATCH":
      return true;
  }
  return false;
}

/** Builds the app's Request; throws a TypeError for what `new Request` rejects. */
export function buildRequest(parts: RequestParts): Request {
  if (fast !== null && isPlainMethod(parts.method)) return fast(parts);
  return standardRequest(parts);
}

/**
 * The runtime's Request cannot carry the method: Bun knows a fixed list and
 * makes any other method GET. Answered with 501.
 */
export class UnsupportedMethodError extends Error {}

/** The portable way: the runtime's own constructor (no `signal`: see info.signal). */
function standardRequest(parts: RequestParts): Request {
  const init: RequestInit & { duplex?: "half" } = { headers: parts.headers() };
  if (parts.method !== "GET") init.method = parts.method;
  if (parts.body !== null) {
    init.body = parts.body;
    init.duplex = "half";
  }
  const request = new Request(fullUrl(parts), init);
  if (request.method !== parts.method) {
    request.body?.cancel().catch(() => {});
    throw new UnsupportedMethodError(`${parts.method} is not supported on this runtime`);
  }
  return request;
}

// deno-lint-ignore no-explicit-any
type Slots = any;

/** The inner request's fields, as Deno's own constructor makes them. */
const INNER_KEYS = [
  "blobUrlEntry",
  "body",
  "clientRid",
  "currentUrl",
  "headerList",
  "headerListInner",
  "method",
  "methodInner",
  "redirectCount",
  "redirectMode",
  "url",
  "urlList",
  "urlListProcessed",
].join();

/** Reads Deno's slot symbols off a real Request and returns a builder using them. */
function denoShortcut(): ((parts: RequestParts) => Request) | null {
  const template = new Request("http://a.test/", {
    method: "POST",
    headers: [["X-A", "1"]],
    body: new ReadableStream(),
    duplex: "half",
  } as RequestInit) as Slots;
  const symbols = Object.getOwnPropertySymbols(template);
  const find = (description: string) => symbols.find((s) => s.description === description);
  const brand = find("[[webidl.brand]]");
  const inner = find("request");
  const guard = find("headers guard");
  if (brand === undefined || inner === undefined || guard === undefined) return null;
  const templateInner = template[inner];
  if (Object.keys(templateInner).sort().join() !== INNER_KEYS) return null;
  const InnerBody = templateInner.body?.constructor;
  if (typeof InnerBody !== "function") return null;
  const RequestClass = Request as unknown as new (brand: symbol) => Slots;

  return (parts) => {
    const request = new RequestClass(brand);
    request[inner] = new InnerRequest(parts, serializeUrl(parts), InnerBody);
    request[guard] = "request";
    return request as Request;
  };
}

/**
 * Bytes a path or query may hold for `new URL()` to keep them as they are:
 * unreserved, sub-delims except "'", ":", "@", "/", "?" and "%". Anything
 * else (quotes, "#", "<", ">", "`", "{", "}", "\\", ...) may be
 * percent-encoded or cut by the URL parser, so takes the slow path.
 */
const VERBATIM = new Uint8Array(128);
for (
  const c of "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._~!$&()*+,;=:@/?%"
) {
  VERBATIM[c.charCodeAt(0)] = 1;
}

/** The absolute URL the parts spell. */
function fullUrl(parts: RequestParts): string {
  return parts.scheme + "://" + parts.authority + parts.target;
}

/** The last origin serialised, and its serialisation (clients send one Host). */
let lastScheme = "";
let lastAuthority = "";
let lastOriginHref = "";
/**
 * The last href made, and its target: clients repeat their requests, and
 * the href handed out again is a flat string, where a new concatenation is
 * flattened (copied) on the app's first search in it.
 */
let lastTarget = "";
let lastHref = "";

/**
 * `new URL(url).href`, without the parse when the origin is the one seen
 * last and the path and query are verbatim (no character the parser would
 * encode, no dot segment, no encoded dot): then the href is the serialised
 * origin followed by the target as sent. Throws like `new URL` otherwise.
 */
function serializeUrl(parts: RequestParts): string {
  const { scheme, authority, target } = parts;
  if (target.charCodeAt(0) !== 0x2f) return new URL(fullUrl(parts)).href;
  if (authority !== lastAuthority || scheme !== lastScheme) {
    const href = new URL(scheme + "://" + authority + "/").href;
    lastScheme = scheme;
    lastAuthority = authority;
    lastOriginHref = href.slice(0, -1);
    lastTarget = "";
  } else if (target === lastTarget) {
    return lastHref;
  }
  let inPath = true;
  for (let i = 0; i < target.length; i++) {
    const c = target.charCodeAt(i);
    if (c >= 128 || VERBATIM[c] === 0) return new URL(fullUrl(parts)).href;
    if (c === 0x3f) inPath = false;
    else if (inPath && c === 0x2e && target.charCodeAt(i - 1) === 0x2f) {
      return new URL(fullUrl(parts)).href;
    } else if (
      inPath && c === 0x25 && target.charCodeAt(i + 1) === 0x32 &&
      (target.charCodeAt(i + 2) | 0x20) === 0x65
    ) return new URL(fullUrl(parts)).href;
  }
  lastTarget = target;
  return lastHref = lastOriginHref + target;
}

/**
 * Deno's inner request, field for field as its `new Request` makes it (see
 * INNER_KEYS), except that the header list is read on first use. A class,
 * not an object literal, so that making one allocates no accessor closures.
 */
class InnerRequest {
  methodInner: string;
  headerListInner: Array<[string, string]> | null = null;
  body: unknown;
  redirectMode = "follow";
  redirectCount = 0;
  urlList: Array<() => string>;
  urlListProcessed: string[];
  clientRid = null;
  blobUrlEntry = null;
  #parts: RequestParts;

  constructor(parts: RequestParts, href: string, InnerBody: new (stream: unknown) => unknown) {
    this.methodInner = parts.method;
    this.#parts = parts;
    this.body = parts.body === null ? null : new InnerBody(parts.body);
    this.urlList = [() => href];
    // What `url()` would store on first use: made whole, it never grows.
    this.urlListProcessed = [href];
  }

  /** Deno's `Request.signal` registers its abort here. */
  onCancel(abort: () => void): void {
    this.#parts.onCancel(abort);
  }

  get method(): string {
    return this.methodInner;
  }

  set method(value: string) {
    this.methodInner = value;
  }

  get headerList(): Array<[string, string]> {
    if (this.headerListInner === null) this.headerListInner = this.#parts.headers();
    return this.headerListInner;
  }

  set headerList(value: Array<[string, string]>) {
    this.headerListInner = value;
  }

  /** Made with the request (see the constructor); a redirect only appends to the lists. */
  url(): string {
    return this.urlListProcessed[0];
  }

  currentUrl(): string {
    const last = this.urlList.length - 1;
    if (this.urlListProcessed[last] === undefined) {
      this.urlListProcessed[last] = this.urlList[last]();
    }
    return this.urlListProcessed[last];
  }
}

/**
 * Node's fetch (undici) keeps a Request's parts in four symbol-keyed fields,
 * and its methods only check `instanceof` and read those fields. Its
 * constructor converts the init dictionary, validates every header again
 * and makes an `AbortController`, whose transferable signal alone costs
 * ~4 µs on Node 20. This makes a Request from its prototype with the same
 * fields: a copy of the inner request a real constructor made (the same keys
 * and values, but for the method, URL, body and header list), and a signal
 * made when first read (unwired, as the constructor's). The headers and
 * their list come from a bodiless `Response`, the only public way to get a
 * `Headers` together with its list (undici keeps the list in a private
 * field); their guard is then "response" where a Request's is "request",
 * and undici checks a guard only for "immutable", so the two behave alike.
 */
function undiciShortcut(): ((parts: RequestParts) => Request) | null {
  const template = new Request("http://a.test/", { headers: [["X-A", "1"]] }) as Slots;
  const symbols = Object.getOwnPropertySymbols(template);
  if (symbols.map((s) => s.description).join() !== "dispatcher,state,signal,headers") {
    return null;
  }
  const [dispatcher, state, signal, headers] = symbols;
  const base = template[state];
  if (
    template[dispatcher] !== undefined || !(base?.url instanceof URL) ||
    Object.keys(base).join() !== UNDICI_KEYS
  ) return null;
  const probe = new Response(null, { headers: [["X-A", "1"]] }) as Slots;
  const responseSymbols = Object.getOwnPropertySymbols(probe);
  const responseState = responseSymbols.find((s) => s.description === "state");
  const responseHeaders = responseSymbols.find((s) => s.description === "headers");
  if (
    responseState === undefined || responseHeaders === undefined ||
    probe[responseState]?.headersList?.constructor !== base.headersList?.constructor
  ) return null;
  // One descriptor for every request: making one per request costs more.
  const lazySignal: PropertyDescriptor = {
    get(this: object) {
      const made = new AbortController().signal;
      define(this, signal, made);
      return made;
    },
    set(this: object, value: unknown) {
      define(this, signal, value);
    },
    enumerable: true,
    configurable: true,
  };
  const proto = Request.prototype;

  return (parts) => {
    const url = new URL(fullUrl(parts));
    if (url.username !== "" || url.password !== "") {
      throw new TypeError("a Request URL cannot include credentials");
    }
    const fields = new Response(null, { headers: parts.headers() }) as Slots;
    const inner = { ...base };
    inner.method = parts.method;
    inner.urlList = [url];
    inner.url = url;
    inner.headersList = fields[responseState].headersList;
    if (parts.body !== null) inner.body = { stream: parts.body, source: null, length: null };
    const request = Object.create(proto);
    request[dispatcher] = undefined;
    request[state] = inner;
    Object.defineProperty(request, signal, lazySignal);
    request[headers] = fields[responseHeaders];
    return request as Request;
  };
}

/** The inner request's fields, as undici's `new Request` makes them. */
const UNDICI_KEYS = [
  "method",
  "localURLsOnly",
  "unsafeRequest",
  "body",
  "client",
  "reservedClient",
  "replacesClientId",
  "window",
  "keepalive",
  "serviceWorkers",
  "initiator",
  "destination",
  "priority",
  "origin",
  "policyContainer",
  "referrer",
  "referrerPolicy",
  "mode",
  "useCORSPreflightFlag",
  "credentials",
  "useCredentials",
  "cache",
  "redirect",
  "integrity",
  "cryptoGraphicsNonceMetadata",
  "parserMetadata",
  "reloadNavigation",
  "historyNavigation",
  "userActivation",
  "taintedOrigin",
  "redirectCount",
  "responseTainting",
  "preventNoCacheCacheControlHeaderModification",
  "done",
  "timingAllowFailed",
  "urlList",
  "url",
  "headersList",
].join();

/** Replaces a lazily made field with the plain field an assignment makes. */
function define(target: object, key: PropertyKey, value: unknown): void {
  Object.defineProperty(target, key, {
    value,
    writable: true,
    enumerable: true,
    configurable: true,
  });
}

/**
 * Compares a shortcut with the real constructor on everything an app can
 * see; `wiresSignal`: the shortcut also wires `signal` to `onCancel`.
 */
function selfTest(make: (parts: RequestParts) => Request, wiresSignal: boolean): boolean {
  // Names a browser's "request" guard would drop included.
  const headers: Array<[string, string]> = [
    ["Host", "example.test:8080"],
    ["X-Many", "a"],
    ["x-many", "b"],
    ["Cookie", "a=1; b=2"],
    ["Content-Type", "text/plain"],
    ["Connection", "keep-alive"],
    ["Content-Length", "4"],
    ["Set-Cookie", "c=3"],
    ["set-cookie", "d=4"],
    ["Origin", "http://o.test"],
    ["Referer", "http://r.test/"],
    ["Sec-Fetch-Mode", "cors"],
    ["Proxy-Authorization", "x"],
    ["Accept-Charset", "utf-8"],
    ["Date", "Mon, 01 Jan 2024 00:00:00 GMT"],
    ["Expect", "100-continue"],
    ["Keep-Alive", "timeout=5"],
    ["Upgrade", "h2c"],
    ["Via", "1.1 p"],
    ["TE", "trailers"],
    ["X-Latin", "caf\u00e9"],
  ];
  const parts = (method: string, body: boolean): RequestParts => ({
    scheme: "http",
    authority: "example.test:8080",
    target: "/p/../q/%7e?x=1#f",
    method,
    headers: () => headers.map(([n, v]) => [n, v]),
    fields: () => headers.join("\n"),
    body: body ? new Blob(["body"]).stream() : null,
    onCancel: () => {},
  });
  const methods = [["GET", false], ["POST", true], ["DELETE", false], ["PUT", true]] as const;
  const same = (a: Request, b: Request) =>
    a instanceof Request && a.url === b.url && a.method === b.method &&
    JSON.stringify([...a.headers]) === JSON.stringify([...b.headers]) &&
    a.headers.get("x-many") === b.headers.get("x-many") && a.bodyUsed === b.bodyUsed &&
    (a.body === null) === (b.body === null) && a.redirect === b.redirect &&
    a.mode === b.mode && a.credentials === b.credentials && a.cache === b.cache &&
    a.referrer === b.referrer && a.signal.aborted === b.signal.aborted;
  // Each request three times: a shortcut may remember the last one, and
  // what the app did to one must not show in the next.
  for (const [method, body] of methods.flatMap((m) => [m, m, m])) {
    const mine = make(parts(method, body));
    const real = standardRequest(parts(method, body));
    if (!same(mine, real)) return false;
    if (!same(mine.clone(), real.clone())) return false;
    if (!same(new Request(mine), new Request(real))) return false;
    mine.headers.append("X-Added", "1");
    if (mine.headers.get("x-added") !== "1") return false;
  }
  if (!wiresSignal) return true;
  let aborted = false;
  const signalled = make({
    ...parts("GET", false),
    onCancel: (abort) => void (aborted = true, abort()),
  });
  return signalled.signal.aborted && aborted;
}

/**
 * Bun: the last bodiless request built, kept out of the app's reach, and
 * what it was built from. Clients repeat their requests, and copying a
 * Request (`template.clone()`, a little cheaper than `new Request(template)`)
 * costs a third of building one with its headers, and needs no header list.
 */
let template: Request | null = null;
let templateFields: string | null = null;
let templateMethod = "";
let templateScheme = "";
let templateAuthority = "";
let templateTarget = "";

/**
 * Bun: a copy of the template when the parts are those it was built from
 * (a template is made on the second request in a row with the same parts),
 * else a request built by `appendedRequest`.
 */
function copiedRequest(parts: RequestParts): Request {
  const fields = parts.body === null ? parts.fields() : null;
  if (fields === null) return appendedRequest(parts);
  if (
    fields === templateFields && parts.target === templateTarget &&
    parts.method === templateMethod && parts.authority === templateAuthority &&
    parts.scheme === templateScheme
  ) {
    template ??= appendedRequest(parts);
    return template.clone();
  }
  template = null;
  templateFields = fields;
  templateMethod = parts.method;
  templateScheme = parts.scheme;
  templateAuthority = parts.authority;
  templateTarget = parts.target;
  return appendedRequest(parts);
}

/** Bun: a bare Request (no init at all for a GET), its headers appended. */
function appendedRequest(parts: RequestParts): Request {
  let request: Request;
  if (parts.body !== null) {
    request = new Request(fullUrl(parts), {
      method: parts.method,
      body: parts.body,
      duplex: "half",
    } as RequestInit);
  } else if (parts.method !== "GET") {
    request = new Request(fullUrl(parts), { method: parts.method });
  } else {
    request = new Request(fullUrl(parts));
  }
  const headers = request.headers;
  for (const [name, value] of parts.headers()) headers.append(name, value);
  return request;
}

/** This runtime's shortcut, or null where none applies or it failed its self-test. */
// Last, so that everything it runs is initialised.
const fast: ((parts: RequestParts) => Request) | null = (() => {
  try {
    if (RUNTIME === "deno") {
      const make = denoShortcut();
      return make !== null && selfTest(make, true) ? make : null;
    }
    if (RUNTIME === "bun") {
      if (!selfTest(appendedRequest, false)) return null;
      return selfTest(copiedRequest, false) ? copiedRequest : appendedRequest;
    }
    const make = undiciShortcut();
    return make !== null && selfTest(make, false) ? make : null;
  } catch {
    // Not as expected: the standard constructor it is.
  }
  return null;
})();
