/**
 * What a Response holds, read the cheap way: its header fields without
 * building a `Headers` object where the runtime allows it, and a body given
 * whole (a string or bytes) without building a `ReadableStream` and a reader
 * for it. Deno keeps both in its Response internals (the shortcuts
 * `Deno.serve` takes). Bun tells a whole body through the size it reports for
 * the Response to its garbage collector (see `bunProbe`). Node's fetch keeps
 * a whole body's source next to its stream (see `undiciState`). Elsewhere, or
 * if those internals ever change shape, the standard API is used.
 * @module
 */

// deno-lint-ignore no-explicit-any
type Internals = any;

import { markReleasable } from "./output_queue.ts";
import { RUNTIME } from "./which.ts";

const encoder = new TextEncoder();

/** Short string bodies are encoded here rather than into a new buffer each. */
const scratch = new Uint8Array(3 * 1024);
/**
 * `scratch.subarray(0, n)` for each length made so far: a view costs ~60 ns
 * to make, and one is good for every body of its length.
 */
const scratchViews: Array<Uint8Array | undefined> = new Array(scratch.byteLength + 1);

function scratchView(n: number): Uint8Array {
  return scratchViews[n] ??= scratch.subarray(0, n);
}

/** Deno's private symbols on Response, found once by their description. */
const symbols = (() => {
  if (RUNTIME !== "deno") return null;
  const found = Object.getOwnPropertySymbols(new Response(""));
  const named = (description: string) => found.find((s) => s.description === description);
  const lazy = named("lazy static body");
  const inner = named("response");
  const lazyType = named("lazy static content type");
  const headers = named("headers");
  // Set, it makes the body used (`Deno.serve` marks what it sends so);
  // without it a lazily held body is read as a stream.
  const consumed = named("serve fast consumed");
  return lazy && inner && lazyType && headers ? { lazy, inner, lazyType, headers, consumed } : null;
})();

/** The part of Bun's globals (and `bun:jsc`) the Bun shortcut uses. */
interface BunProbe {
  /** `Bun.peek`: a settled promise's value, else the promise itself. */
  peek(promise: Promise<unknown>): unknown;
  /** `estimateShallowMemoryUsageOf` from `bun:jsc`. */
  estimate(value: object): number;
  /** What a Response without body, URL or status text reports. */
  base: number;
  /**
   * `bytes()` hands over a copy made when the Response was made, never the
   * app's own buffer: so the server may free it once sent.
   */
  copies: boolean;
  /**
   * A status text of Latin-1 characters counts one byte each, however the
   * engine stores the string (else two are assumed, so that a stream body
   * never looks held).
   */
  latin1Text: boolean;
}

/**
 * Bun keeps a body given as a string, bytes or JSON in the Response itself,
 * and `bytes()` then resolves at once with a copy of them. A Response reports
 * to the garbage collector, once, when it is created, a fixed size plus its
 * URL, its status text and such a body's length; a stream body (a
 * `ReadableStream`, an async iterable, a fetch body), a Blob and a
 * `Bun.file` count 0 there. So a Response reporting more than the fixed part
 * holds its whole body in memory, and only such a body is taken; everything
 * else is read as a stream. The probe checks that rule at load and stays off
 * (`null`) if this Bun does not follow it.
 */
const bunProbe: BunProbe | null = (() => {
  if (RUNTIME !== "bun") return null;
  // deno-lint-ignore no-explicit-any
  const bun = (globalThis as any).Bun;
  if (typeof bun.peek !== "function") return null;
  try {
    const load = (import.meta as unknown as { require?: (id: string) => unknown }).require;
    const jsc = load?.("bun:jsc") as { estimateShallowMemoryUsageOf?: unknown } | undefined;
    const estimate = jsc?.estimateShallowMemoryUsageOf;
    if (typeof estimate !== "function") return null;
    const probe: BunProbe = {
      peek: bun.peek,
      estimate: estimate as (value: object) => number,
      base: estimate(new Response(null)),
      copies: false,
      latin1Text: false,
    };
    const source = new Uint8Array(8);
    const copy = bun.peek(new Response(source).bytes());
    probe.copies = copy instanceof Uint8Array && copy.buffer !== source.buffer;
    // A Latin-1 text the engine holds two bytes a character (cut from a wider string).
    const wide = "D\u00e9j\u00e0 vu \u20ac".slice(0, 7);
    probe.latin1Text = estimate(new Response(new ReadableStream(), { statusText: wide })) ===
        probe.base + 7 && estimate(new Response("abc", { statusText: wide })) === probe.base + 10;
    const ok = probe.base > 0 &&
      estimate(new Response("abc")) === probe.base + 3 &&
      estimate(new Response("abc", { statusText: "Fine" })) === probe.base + 7 &&
      estimate(new Response(new ReadableStream())) === probe.base &&
      estimate(new Response(new Blob(["abc"]))) === probe.base &&
      takeFromBun(probe, new Response("abc"))?.byteLength === 3 &&
      takeFromBun(probe, new Response(new ReadableStream())) === undefined;
    return ok ? probe : null;
  } catch {
    return null;
  }
})();

/**
 * Bun: the body bytes when `response` reports a body held in memory, taken
 * with `bytes()` only once that is certain (a stream body is never touched).
 */
function takeFromBun(probe: BunProbe, response: Response): Uint8Array | undefined {
  // Fetch responses carry a URL; theirs is not counted here, so skip them.
  if (response.url !== "") return undefined;
  const held = probe.estimate(response) - probe.base - textBytes(probe, response.statusText);
  if (held <= 0) return undefined;
  const pending = response.bytes();
  const value = probe.peek(pending);
  if (value instanceof Uint8Array) {
    if (probe.copies) markReleasable(value);
    return value;
  }
  // Not at once after all (e.g. the app locked the body with a reader): the
  // promise rejects, and the caller finds the body locked or used.
  pending.catch(() => {});
  return undefined;
}

/** How much of a body `impliedType` looks at (about what a browser sniffs). */
const SNIFF_BYTES = 1024;

/**
 * The content type that a whole body taken with `takeStaticBody` implies
 * and the Response's fields left out, or null. The fetch standard gives a
 * string body `text/plain;charset=UTF-8` in the header list, as Deno and Node
 * do; Bun leaves it out (`Bun.serve` adds it when sending), and cannot tell
 * such a body from bytes: on Bun a body whose first KiB is UTF-8 text
 * without binary control bytes gets it, so bytes that look like text are
 * labelled as text there too. Elsewhere null: the fields have it.
 */
export function impliedType(body: Uint8Array): string | null {
  return bunProbe !== null && body.byteLength > 0 && looksLikeText(body) ? TEXT_TYPE : null;
}

/**
 * Whether the start of `bytes` is UTF-8 without the bytes the MIME sniffing
 * standard calls binary (C0 controls but for TAB, LF, FF, CR and ESC). A
 * character cut off at the end of the part looked at is read whole.
 */
function looksLikeText(bytes: Uint8Array): boolean {
  const n = Math.min(bytes.byteLength, SNIFF_BYTES);
  let i = 0;
  while (i < n) {
    const c = bytes[i++];
    if (c < 0x20) {
      if (c !== 9 && c !== 10 && c !== 12 && c !== 13 && c !== 27) return false;
    } else if (c >= 0x80) {
      const more = c >= 0xc2 && c <= 0xdf
        ? 1
        : c >= 0xe0 && c <= 0xef
        ? 2
        : c >= 0xf0 && c <= 0xf4
        ? 3
        : 0;
      if (more === 0 || i + more > bytes.byteLength) return false;
      for (const end = i + more; i < end; i++) if ((bytes[i] & 0xc0) !== 0x80) return false;
    }
  }
  return true;
}

/** What a Response's status text counts in its reported size (see `BunProbe.latin1Text`). */
function textBytes(probe: BunProbe, text: string): number {
  if (!probe.latin1Text) return 2 * text.length;
  for (let i = 0; i < text.length; i++) if (text.charCodeAt(i) > 0xff) return 2 * text.length;
  return text.length;
}

/**
 * Node's fetch (undici) keeps what a body was made from next to its stream,
 * in the Response's `state`: the string itself, or a copy of the bytes it was
 * given (undici copies a buffer source when the Response is made), and for
 * anything else (a stream, a Blob, form data) something that is neither.
 * Reading the stream instead costs more than the rest of a small response
 * on Node 20. Found once by its description and checked at load; `null`
 * elsewhere or if this Node differs.
 */
const undiciState: symbol | null = (() => {
  if (RUNTIME !== "node") return null;
  try {
    const state = Object.getOwnPropertySymbols(new Response("")).find((s) =>
      s.description === "state"
    );
    if (state === undefined) return null;
    const bytes = new Uint8Array([1, 2]);
    const fromBytes = takeFromUndici(state, new Response(bytes));
    bytes[0] = 9;
    const ok = new TextDecoder().decode(takeFromUndici(state, new Response("h\u00e9"))) ===
        "h\u00e9" &&
      fromBytes?.join() === "1,2" &&
      takeFromUndici(state, new Response(new ReadableStream())) === undefined &&
      takeFromUndici(state, new Response(new Blob(["x"]))) === undefined &&
      takeFromUndici(state, new Response(null)) === undefined;
    return ok ? state : null;
  } catch {
    return null;
  }
})();

/**
 * Whether `takeStaticBody` takes whole bodies on this runtime: on Bun whose
 * reported sizes follow `bunProbe`'s rule, on Node whose undici keeps a
 * Response's state under a symbol (before Node 24: undici 7 keeps it in
 * private fields), on Deno whose Response has the lazy-body internals (2.8
 * and later). Elsewhere every body is read as a stream.
 */
export const STATIC_BODIES: boolean = bunProbe !== null || undiciState !== null ||
  symbols !== null;

/**
 * Node: the body's source when it is a string or bytes and its stream was
 * never read nor locked. The stream is cancelled, which only marks it used:
 * it never started.
 */
function takeFromUndici(state: symbol, response: Response): Uint8Array | undefined {
  const body = (response as Internals)[state]?.body;
  const source = body?.source;
  if (typeof source !== "string" && !(source instanceof Uint8Array)) return undefined;
  const stream = body.stream;
  if (!(stream instanceof ReadableStream) || stream.locked || response.bodyUsed) {
    return undefined;
  }
  stream.cancel().catch(() => {});
  return typeof source === "string" ? encode(source) : source;
}

/**
 * The whole body of `response` as bytes when the runtime holds it as a
 * string or bytes (marking it consumed), or `undefined` when it must be read
 * as a stream (or has no body).
 *
 * A short string body comes back as a view of a shared buffer that the next
 * call overwrites: copy it out before anything else can run.
 */
export function takeStaticBody(response: Response): Uint8Array | undefined {
  if (bunProbe !== null) return takeFromBun(bunProbe, response);
  if (undiciState !== null) return takeFromUndici(undiciState, response);
  if (symbols === null) return undefined;
  try {
    const r = response as Internals;
    const lazy = r[symbols.lazy];
    if (typeof lazy === "string") {
      if (symbols.consumed === undefined || r[symbols.consumed] === true) return undefined;
      r[symbols.consumed] = true;
      return encode(lazy);
    }
    const held = r[symbols.inner]?.body?.streamOrStatic;
    if (held === undefined || held === null || held instanceof ReadableStream || held.consumed) {
      return undefined;
    }
    const body = held.body;
    if (typeof body === "string") {
      held.consumed = true;
      return encode(body);
    }
    if (body instanceof Uint8Array) {
      // Not marked releasable, though Deno copied it when the Response was
      // made: its clone() shares these very bytes with the clone, which the
      // app may keep (a cached response) or serve again.
      held.consumed = true;
      return body;
    }
  } catch {
    // Internals not as expected: read the stream instead.
  }
  return undefined;
}

/**
 * The text `scratch` holds the encoding of, and that encoding: an app
 * usually answers with the same text again (the comparison is one of
 * pointers for the same string).
 */
let lastText = "";
let lastEncoded = scratchView(0);

function encode(text: string): Uint8Array {
  if (text === lastText) return lastEncoded;
  if (text.length > 1024) return encoder.encode(text);
  lastText = text;
  // Short ASCII is copied by hand: a call into the native encoder costs
  // more than the loop.
  const n = text.length;
  if (n <= 64) {
    let i = 0;
    for (; i < n; i++) {
      const c = text.charCodeAt(i);
      if (c > 0x7f) break;
      scratch[i] = c;
    }
    if (i === n) return lastEncoded = scratchView(n);
  }
  // At most 3 bytes per UTF-16 unit, so it always fits.
  return lastEncoded = scratchView(encoder.encodeInto(text, scratch).written);
}

/**
 * The header fields of `response` as a flat list (`name, value, name, value,
 * …`), exactly as `headers.forEach` yields them: lower-case names in sorted
 * order, the values of a repeated name joined with ", ", each Set-Cookie on
 * its own. On Deno the list is read from the Response internals, so that no
 * `Headers` object is built (nor, for a plain `new Response(text)`, the
 * header list itself). The list may be one the next call fills again: a
 * caller that keeps it keeps a copy.
 */
export function responseFields(response: Response): string[] {
  if (denoFieldsOk) {
    const fields = denoFields(response);
    if (fields !== undefined) return fields;
  }
  return standardFields(response);
}

/** What `standardFields` fills (see `responseFields`). */
const scratchFields: string[] = [];

function standardFields(response: Response): string[] {
  const fields = scratchFields;
  while (fields.length > 0) fields.pop(); // cheaper than setting length
  response.headers.forEach(pushField, fields);
  return fields;
}

/** `headers.forEach`'s callback, the list it fills passed as `this` (no closure a response). */
function pushField(this: string[], value: string, name: string): void {
  this.push(name, value);
}

/** The content type Deno gives a string body made without an init. */
const TEXT_TYPE = "text/plain;charset=UTF-8";

/**
 * Deno: the fields from the Response internals, or `undefined` if they are
 * not as expected. Deno keeps a content type out of the header list until
 * someone asks for the headers: that of a body it holds lazily (a string
 * made without an init, or `Response.json`), or, for a 200 whose only header
 * is a plain text or JSON content type, that type.
 */
function denoFields(response: Response): string[] | undefined {
  try {
    const r = response as Internals;
    const list = r[symbols!.inner]?.headerList;
    if (!Array.isArray(list)) return undefined;
    const lazy = r[symbols!.lazy];
    let type = r[symbols!.lazyType];
    if (typeof lazy === "string") type ??= TEXT_TYPE;
    else if (lazy !== null) return undefined;
    if (type === null) return sortAndCombine(list);
    if (typeof type !== "string") return undefined;
    if (list.length === 0) return ["content-type", type];
    return sortAndCombine([...list, ["content-type", type]]);
  } catch {
    return undefined;
  }
}

/** Fetch's "sort and combine" over a header list of `[name, value]` pairs. */
function sortAndCombine(list: Array<[string, string]>): string[] {
  if (list.length === 0) return [];
  if (list.length === 1) return [lowerName(list[0][0]), list[0][1]];
  const pairs = list.map(([name, value]) => [lowerName(name), value]);
  // Array.prototype.sort is stable: Set-Cookie values keep their order.
  pairs.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
  const fields: string[] = [];
  for (const [name, value] of pairs) {
    const last = fields.length - 2;
    if (last >= 0 && fields[last] === name && name !== "set-cookie") {
      fields[last + 1] += ", " + value;
    } else {
      fields.push(name, value);
    }
  }
  return fields;
}

/** Header names are tokens (ASCII): lower-cased only when they need it. */
function lowerName(name: string): string {
  for (let i = 0; i < name.length; i++) {
    const c = name.charCodeAt(i);
    if (c >= 65 && c <= 90) return name.toLowerCase();
  }
  return name;
}

/**
 * Whether reading Deno's internals gives what `forEach` gives, checked once
 * at load on responses made every way an app makes them.
 */
const denoFieldsOk: boolean = (() => {
  if (symbols === null) return false;
  const samples: Array<() => Response> = [
    () => new Response("text"),
    () => new Response(""),
    () => Response.json({ a: 1 }),
    () => new Response("text", { status: 201 }),
    () => new Response(null, { status: 204 }),
    () => new Response(new Uint8Array([1])),
    () => Response.json([1], { headers: { "X-B": "2" } }),
    () => Response.json([1], { status: 200 }),
    () => new Response("{}", { headers: { "Content-Type": "application/json" } }),
    () => new Response(new Uint8Array([1]), { headers: { "content-type": "text/plain" } }),
    () => new Response("x", { status: 201, headers: { "content-type": "application/json" } }),
    () =>
      new Response("x", {
        headers: [["X-Z", "1"], ["Set-Cookie", "b=2"], ["x-a", "2"], ["X-Z", "3"], [
          "set-cookie",
          "a=1",
        ]],
      }),
    () => {
      const response = new Response("touched");
      response.headers.set("X-Added", "yes");
      return response;
    },
    () => {
      const response = Response.json({});
      response.headers.delete("content-type");
      return response;
    },
  ];
  try {
    return samples.every((make) => {
      const fast = denoFields(make());
      return fast !== undefined && fast.join("\n") === standardFields(make()).join("\n");
    });
  } catch {
    return false;
  }
})();
