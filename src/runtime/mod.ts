/**
 * The runtime socket layer: picks the adapter for the runtime we run on.
 * @module
 */

import type { Runtime } from "./types.ts";
import { RUNTIME } from "./which.ts";

export type { Addr, Listener, ListenSpec, Runtime, Socket, SocketHandler } from "./types.ts";
export { formatAddr } from "./messages.ts";

/**
 * The adapter for the current runtime (see `RUNTIME`). Only that adapter is
 * loaded: on Deno the node:net and node:fs that the others
 * need add some 3 MB to the live heap, which every garbage collection then
 * walks.
 */
export async function detectRuntime(): Promise<Runtime> {
  if (RUNTIME === "deno") return (await import("./deno.ts")).denoRuntime;
  if (RUNTIME === "bun") return (await import("./bun.ts")).bunRuntime;
  return (await import("./node.ts")).nodeRuntime;
}
