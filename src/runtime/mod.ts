/**
 * The runtime socket layer: picks the adapter for the runtime we run on.
 * @module
 */

import type { Runtime } from "./types.ts";
import { denoRuntime } from "./deno.ts";
import { bunRuntime } from "./bun.ts";
import { nodeRuntime } from "./node.ts";

export type { Addr, Listener, ListenSpec, Runtime, Socket, SocketHandler } from "./types.ts";
export { denoRuntime } from "./deno.ts";
export { bunRuntime } from "./bun.ts";
export { nodeRuntime } from "./node.ts";
export { formatAddr } from "./shared.ts";

/**
 * Returns the adapter for the current runtime: Deno, then Bun, else
 * node:net. (`process.versions.node` is set on all three, so it is not used.)
 */
export function detectRuntime(): Runtime {
  const g = globalThis as { Deno?: { version?: { deno?: unknown } }; Bun?: { version?: unknown } };
  if (typeof g.Deno?.version?.deno === "string") return denoRuntime;
  if (typeof g.Bun?.version === "string") return bunRuntime;
  return nodeRuntime;
}
