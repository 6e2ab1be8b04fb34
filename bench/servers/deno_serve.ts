/**
 * `Deno.serve` with the benchmark app (the native server on Deno):
 *   deno run -A bench/servers/deno_serve.ts --port=8080
 * @module
 */
import { app, listenArgs } from "./app.ts";

const { host, port } = listenArgs(Deno.args, (name) => Deno.env.get(name));
Deno.serve({
  hostname: host,
  port,
  onListen: (addr) => console.log(`Deno.serve listening on ${addr.hostname}:${addr.port}`),
}, app.fetch);
