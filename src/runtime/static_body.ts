/**
 * A shortcut for responses whose body was given whole (a string or bytes):
 * their bytes, read without building a `ReadableStream` and a reader for
 * them. Deno keeps such a body in its Response internals (the same shortcut
 * `Deno.serve` takes). Bun tells it through the size it reports for the
 * Response to its garbage collector (see `bunProbe`). Elsewhere, or if those
 * internals ever change shape, this finds nothing and the caller reads the
 * stream as usual.
 * @module
 */

// deno-lint-ignore no-explicit-any
type Internals = any;

const encoder = new TextEncoder();

/** Short string bodies are encoded here rather than into a new buffer each. */
const scratch = new Uint8Array(3 * 1024);

/** Deno's private symbols on Response, found once by their description. */
const symbols = (() => {
  // deno-lint-ignore no-explicit-any
  if (typeof (globalThis as any).Deno?.version?.deno !== "string") return null;
  const found = Object.getOwnPropertySymbols(new Response(""));
  const lazy = found.find((s) => s.description === "lazy static body");
  const inner = found.find((s) => s.description === "response");
  return lazy && inner ? { lazy, inner } : null;
})();

/** The part of Bun's globals (and `bun:jsc`) the Bun shortcut uses. */
interface BunProbe {
  /** `Bun.peek`: a settled promise's value, else the promise itself. */
  peek(promise: Promise<unknown>): unknown;
  /** `estimateShallowMemoryUsageOf` from `bun:jsc`. */
  estimate(value: object): number;
  /** What a Response without body, URL or status text reports. */
  base: number;
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
  // deno-lint-ignore no-explicit-any
  const bun = (globalThis as any).Bun;
  if (typeof bun?.version !== "string" || typeof bun.peek !== "function") return null;
  try {
    const load = (import.meta as unknown as { require?: (id: string) => unknown }).require;
    const jsc = load?.("bun:jsc") as { estimateShallowMemoryUsageOf?: unknown } | undefined;
    const estimate = jsc?.estimateShallowMemoryUsageOf;
    if (typeof estimate !== "function") return null;
    const probe: BunProbe = {
      peek: bun.peek,
      estimate: estimate as (value: object) => number,
      base: estimate(new Response(null)),
    };
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
  // The status text counts one byte per character, or two when the string is
  // stored as UTF-16: assume two, so that a stream body never looks held.
  const held = probe.estimate(response) - probe.base - 2 * response.statusText.length;
  if (held <= 0) return undefined;
  const pending = response.bytes();
  const value = probe.peek(pending);
  if (value instanceof Uint8Array) return value;
  // Not at once after all (e.g. the app locked the body with a reader): the
  // promise rejects, and the caller finds the body locked or used.
  pending.catch(() => {});
  return undefined;
}

/**
 * The whole body of `response` as bytes when the runtime holds it as a
 * string or bytes (marking it consumed where it keeps that state), or
 * `undefined` when it must be read as a stream (or has no body).
 *
 * A short string body comes back as a view of a shared buffer that the next
 * call overwrites: copy it out before anything else can run.
 */
export function takeStaticBody(response: Response): Uint8Array | undefined {
  if (bunProbe !== null) return takeFromBun(bunProbe, response);
  if (symbols === null) return undefined;
  try {
    const r = response as Internals;
    const lazy = r[symbols.lazy];
    if (typeof lazy === "string") return encode(lazy);
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
      held.consumed = true;
      return body;
    }
  } catch {
    // Internals not as expected: read the stream instead.
  }
  return undefined;
}

function encode(text: string): Uint8Array {
  if (text.length > 1024) return encoder.encode(text);
  // At most 3 bytes per UTF-16 unit, so it always fits.
  return scratch.subarray(0, encoder.encodeInto(text, scratch).written);
}
