/**
 * Which runtime this is, decided once: Deno, then Bun, else Node.
 * (`process.versions.node` is set on all three, so it does not tell.)
 * @module
 */

/** The runtime the server runs on. */
export type RuntimeName = "deno" | "bun" | "node";

/** The runtime the server runs on. */
export const RUNTIME: RuntimeName = (() => {
  const g = globalThis as { Deno?: { version?: { deno?: unknown } }; Bun?: { version?: unknown } };
  if (typeof g.Deno?.version?.deno === "string") return "deno";
  if (typeof g.Bun?.version === "string") return "bun";
  return "node";
})();
