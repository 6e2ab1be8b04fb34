/**
 * The smallest app: `npx deno run -A cli/mod.ts examples/hello.ts`.
 * Any `export default { fetch }` app (Hono, itty, plain) works the same way.
 * @module
 */
export default {
  fetch(request: Request): Response {
    const { pathname } = new URL(request.url);
    if (pathname === "/") return new Response("Hello world\n");
    return new Response("Not Found\n", { status: 404 });
  },
};
