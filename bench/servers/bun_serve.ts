/**
 * `Bun.serve` with the benchmark app (the native server on Bun):
 *   bun bench/servers/bun_serve.ts --port=8080
 * @module
 */
import process from "node:process";
import { app, listenArgs } from "./app.ts";

// Only what this file uses; the project has no Bun type package.
declare const Bun: {
  serve(options: {
    hostname: string;
    port: number;
    idleTimeout?: number;
    maxRequestBodySize?: number;
    fetch: (request: Request) => Response | Promise<Response>;
  }): { hostname: string; port: number };
};

const { host, port } = listenArgs(process.argv.slice(2), (name) => process.env[name]);
const server = Bun.serve({
  hostname: host,
  port,
  // Bun closes keep-alive connections idle for 10 s by default, which would
  // empty scenario (e) while it is measured; 0 turns that off. The other
  // servers keep idle connections for 120 s (waitress) or forever.
  idleTimeout: 0,
  fetch: app.fetch,
});
console.log(`Bun.serve listening on ${server.hostname}:${server.port}`);
