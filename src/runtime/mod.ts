/**
 * The runtime socket layer: picks the adapter for the runtime we run on.
 * @module
 */

import type { Runtime } from "./types.ts";

export type { Addr, Listener, ListenSpec, Runtime, Socket, SocketHandler } from "./types.ts";
export { formatAddr } from "./messages.ts";

/**
 * The adapter for the current runtime: Deno, then Bun, else node:net.
 * (`process.versions.node` is set on all three, so it is not used.) Only
 * that adapter is loaded: on Deno the node:net and node:fs that the others
 * need add some 3 MB to the live heap, which every garbage collection then
 * walks.
 */
export async function detectRuntime(): Promise<Runtime> {
  const g = globalThis as { Deno?: { version?: { deno?: unknown } }; Bun?: { version?: unknown } };
  if (typeof g.Deno?.version?.deno === "string") return (await import("./deno.ts")).denoRuntime;
  if (typeof g.Bun?.version === "string") return (await import("./bun.ts")).bunRuntime;
  return (await import("./node.ts")).nodeRuntime;
}
