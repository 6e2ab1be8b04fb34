/**
 * The one fetch-handler app every JavaScript server in the benchmark serves
 * (waitress on Deno and Bun, `Deno.serve`, `Bun.serve`). `node_http.mjs` and
 * `waitress_app.py` answer the same routes with the same bytes.
 *
 * Routes:
 * - `GET /`            12-byte "Hello world\n"
 * - `GET /64k`         a 64 KiB body
 * - `GET /stream100m`  100 MiB streamed in 64 KiB chunks (no Content-Length)
 * - `POST /upload`     reads and counts the body, answers the count
 * - `GET /json`        goes through a small router (URL parsing, route table,
 *                      JSON serialisation): the cost a real app sees
 *
 * @module
 */

/** Size of one streamed chunk, and of the `/64k` body. */
export const CHUNK_SIZE = 64 * 1024;
/** Number of chunks `/stream100m` sends: 1600 × 64 KiB = 100 MiB. */
export const STREAM_CHUNKS = 1600;

const HELLO = "Hello world\n";
const BODY_64K = new Uint8Array(CHUNK_SIZE).fill(0x61);
const CHUNK = new Uint8Array(CHUNK_SIZE).fill(0x62);

type RouteHandler = (request: Request, params: Record<string, string>) => Response;

/**
 * A deliberately ordinary router: static routes in a map keyed by
 * "METHOD path", parameter routes tried in order. It parses the URL with
 * `new URL()` like most router libraries do, so (f) pays what apps pay.
 */
class Router {
  #static = new Map<string, RouteHandler>();
  #dynamic: { method: string; parts: string[]; handler: RouteHandler }[] = [];

  get(pattern: string, handler: RouteHandler): this {
    return this.#add("GET", pattern, handler);
  }

  #add(method: string, pattern: string, handler: RouteHandler): this {
    if (pattern.includes("/:")) {
      this.#dynamic.push({ method, parts: pattern.split("/"), handler });
    } else {
      this.#static.set(`${method} ${pattern}`, handler);
    }
    return this;
  }

  handle(request: Request): Response {
    const url = new URL(request.url);
    const exact = this.#static.get(`${request.method} ${url.pathname}`);
    if (exact) return exact(request, {});
    const parts = url.pathname.split("/");
    for (const route of this.#dynamic) {
      if (route.method !== request.method || route.parts.length !== parts.length) continue;
      const params: Record<string, string> = {};
      let ok = true;
      for (let i = 0; i < parts.length && ok; i++) {
        const want = route.parts[i];
        if (want.startsWith(":")) params[want.slice(1)] = decodeURIComponent(parts[i]);
        else ok = want === parts[i];
      }
      if (ok) return route.handler(request, params);
    }
    return Response.json({ error: "not found" }, { status: 404 });
  }
}

const router = new Router()
  .get("/json", (request) =>
    Response.json({
      message: "Hello, World!",
      agent: request.headers.get("user-agent") ?? "",
      items: [1, 2, 3],
    }))
  .get("/users/:id", (_request, params) => Response.json({ id: params.id }));

/** Takes the path out of an absolute request URL without building a `URL`. */
function pathOf(url: string): string {
  const start = url.indexOf("/", url.indexOf("//") + 2);
  if (start < 0) return "/";
  const query = url.indexOf("?", start);
  return query < 0 ? url.slice(start) : url.slice(start, query);
}

function stream100m(): Response {
  let sent = 0;
  const body = new ReadableStream<Uint8Array>({
    pull(controller) {
      if (sent++ < STREAM_CHUNKS) controller.enqueue(CHUNK.slice());
      else controller.close();
    },
  });
  return new Response(body, { headers: { "content-type": "application/octet-stream" } });
}

async function upload(request: Request): Promise<Response> {
  let count = 0;
  if (request.body) {
    const reader = request.body.getReader();
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      count += value.byteLength;
    }
  }
  return new Response(String(count));
}

/** Answers one request; the fast paths come first so (a)–(d) measure the server, not the app. */
function handle(request: Request): Response | Promise<Response> {
  switch (pathOf(request.url)) {
    case "/":
      return new Response(HELLO);
    case "/64k":
      return new Response(BODY_64K, { headers: { "content-type": "application/octet-stream" } });
    case "/stream100m":
      return stream100m();
    case "/upload":
      return upload(request);
    default:
      return router.handle(request);
  }
}

/** The benchmark app, in the `export default { fetch }` shape. */
export const app: { fetch: (request: Request) => Response | Promise<Response> } = {
  fetch: handle,
};

/** Reads `--port=N` / `--host=H` (or PORT / HOST from the environment). */
export function listenArgs(args: string[], env: (name: string) => string | undefined): {
  host: string;
  port: number;
} {
  let host = env("HOST") ?? "127.0.0.1";
  let port = Number(env("PORT") ?? 8080);
  for (const arg of args) {
    if (arg.startsWith("--port=")) port = Number(arg.slice(7));
    else if (arg.startsWith("--host=")) host = arg.slice(7);
  }
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new Error(`bad port: ${port}`);
  return { host, port };
}
