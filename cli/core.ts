/**
 * The server part of the core the CLI uses.
 * @module
 */
export { createServer } from "@waitress/core";
export type { Addr, App, Logger, Options, Server } from "@waitress/core";
