/**
 * @waitress/core serving the benchmark app; runs unchanged on Deno and Bun:
 *   deno run -A bench/servers/waitress.ts --port=8080 [--options='{"connectionLimit":20000}']
 *   bun bench/servers/waitress.ts --port=8080
 * @module
 */
import process from "node:process";
import { type Options, serve } from "../../mod.ts";
import { app, listenArgs } from "./app.ts";

const args = process.argv.slice(2);
const { host, port } = listenArgs(args, (name) => process.env[name]);
const extra = args.find((arg) => arg.startsWith("--options="));
const options: Options = extra ? JSON.parse(extra.slice(10)) : {};

const server = serve(app, { ...options, host, port });
await server.ready;
console.log(`waitress listening on ${server.addr.hostname}:${server.addr.port}`);
