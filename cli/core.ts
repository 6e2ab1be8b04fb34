/**
 * The server part of the core the CLI uses.
 * @module
 */
export { createServer } from "@waitress/core";
export type { Addr, App, Options, Server } from "@waitress/core";
