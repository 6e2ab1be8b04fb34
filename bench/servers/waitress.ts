/**
 * @waitress/core serving the benchmark app; runs unchanged on Deno and Bun:
 *   deno run -A bench/servers/waitress.ts --port=8080 [--options='{"connectionLimit":20000}']
 *   bun bench/servers/waitress.ts --port=8080
 * @module
 */
import { type Options, serve } from "../../mod.ts";
import { app, listenArgs } from "./app.ts";

// Deno's own API where there is one: on Deno, node:process brings Node's
// compatibility layer into the heap (~0.8 MB, more for every garbage
// collection to mark), which `deno_serve.ts` does not carry either.
// deno-lint-ignore no-explicit-any
const runtime = globalThis as any;
const args: string[] = runtime.Deno ? runtime.Deno.args : runtime.process.argv.slice(2);
const env = (name: string): string | undefined =>
  runtime.Deno ? runtime.Deno.env.get(name) : runtime.process.env[name];
const { host, port } = listenArgs(args, env);
const extra = args.find((arg) => arg.startsWith("--options="));
const options: Options = extra ? JSON.parse(extra.slice(10)) : {};

const server = serve(app, { ...options, host, port });
await server.ready;
console.log(`waitress listening on ${server.addr.hostname}:${server.addr.port}`);
