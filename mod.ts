/**
 * `@waitress/core`: a production HTTP/1.1 server for fetch-handler apps, on
 * Deno, Bun and Node, with the same behaviour everywhere.
 *
 * ```ts
 * import { serve } from "@waitress/core";
 *
 * const server = serve((request) => new Response("Hello world\n"), { port: 8080 });
 * await server.ready;
 * ```
 * @module
 */
export { createServer, serve } from "./src/server.ts";
export { fileResponse } from "./src/file_response.ts";
export type { App, Server } from "./src/server.ts";
export type { Handler, RequestInfo, RequestIP } from "./src/task.ts";
export {
  closest,
  DEFAULTS,
  optionsFromStrings,
  resolveOptions,
  STRING_OPTIONS,
} from "./src/adjustments.ts";
export type { Adjustments, ErrorHook, Logger, Options, StringKind } from "./src/adjustments.ts";
export type { Addr, ListenSpec } from "./src/runtime/types.ts";

/** The package version. */
export const VERSION = "0.1.0";
