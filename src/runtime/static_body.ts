/**
 * A shortcut for responses whose body was given whole (a string or bytes):
 * their bytes, read without building a `ReadableStream` and a reader for
 * them. Deno keeps such a body in its Response internals (the same shortcut
 * `Deno.serve` takes); elsewhere, or if those internals ever change shape,
 * this finds nothing and the caller reads the stream as usual.
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

/**
 * The whole body of `response` as bytes when the runtime holds it as a
 * string or bytes (marking it consumed where it keeps that state), or
 * `undefined` when it must be read as a stream (or has no body).
 *
 * A short string body comes back as a view of a shared buffer that the next
 * call overwrites: copy it out before anything else can run.
 */
export function takeStaticBody(response: Response): Uint8Array | undefined {
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
