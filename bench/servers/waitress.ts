/**
 * @waitress/core serving the benchmark app; runs unchanged on Deno and Bun:
 *   deno run -A bench/servers/waitress.ts --port=8080 [--options='{"connectionLimit":20000}']
 *   bun bench/servers/waitress.ts --port=8080
 *
 * Exits with code 3 when mod.ts does not export `serve` yet, so the bench
 * can say so instead of failing obscurely.
 * @module
 */
import process from "node:process";
import * as core from "../../mod.ts";
import { app, listenArgs } from "./app.ts";

interface BenchServer {
  readonly ready: Promise<void>;
  readonly addr: { hostname?: string; port?: number };
}
type Serve = (app: unknown, options: Record<string, unknown>) => BenchServer;

// Looked up at run time (not a named import) so this file type-checks and
// fails with a clear message while `serve` is still being written.
const serve = (core as unknown as { serve?: Serve }).serve;
if (typeof serve !== "function") {
  console.error("waitress.ts: mod.ts does not export serve() yet");
  process.exit(3);
}

const args = process.argv.slice(2);
const { host, port } = listenArgs(args, (name) => process.env[name]);
const extra = args.find((arg) => arg.startsWith("--options="));
const options: Record<string, unknown> = extra ? JSON.parse(extra.slice(10)) : {};

const server = serve(app, { ...options, host, port });
await server.ready;
console.log(`waitress listening on ${server.addr.hostname}:${server.addr.port}`);
