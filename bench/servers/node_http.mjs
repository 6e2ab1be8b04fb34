// node:http on Node 20 with the benchmark app's routes and bytes
// (Node 20 cannot run .ts, so this is the one hand-kept copy of bench/servers/app.ts):
//   node bench/servers/node_http.mjs --port=8080
import http from "node:http";

const CHUNK_SIZE = 64 * 1024;
const STREAM_CHUNKS = 1600;
const HELLO = Buffer.from("Hello world\n");
const BODY_64K = Buffer.alloc(CHUNK_SIZE, 0x61);
const CHUNK = Buffer.alloc(CHUNK_SIZE, 0x62);

let host = process.env.HOST ?? "127.0.0.1";
let port = Number(process.env.PORT ?? 8080);
for (const arg of process.argv.slice(2)) {
  if (arg.startsWith("--port=")) port = Number(arg.slice(7));
  else if (arg.startsWith("--host=")) host = arg.slice(7);
}

// The same small router as app.ts: URL parsing, a route table, JSON out.
const routes = new Map([
  ["GET /json", (req) => ({
    message: "Hello, World!",
    agent: req.headers["user-agent"] ?? "",
    items: [1, 2, 3],
  })],
]);

function json(res, status, value) {
  const body = JSON.stringify(value);
  res.writeHead(status, {
    "content-type": "application/json",
    "content-length": Buffer.byteLength(body),
  });
  res.end(body);
}

function route(req, res) {
  const url = new URL(req.url, `http://${req.headers.host ?? "localhost"}`);
  const handler = routes.get(`${req.method} ${url.pathname}`);
  if (handler) json(res, 200, handler(req));
  else json(res, 404, { error: "not found" });
}

function stream(res) {
  res.writeHead(200, { "content-type": "application/octet-stream" });
  let sent = 0;
  // Respect backpressure: write until write() says the buffer is full, then wait for drain.
  const pump = () => {
    while (sent < STREAM_CHUNKS) {
      sent++;
      if (!res.write(Buffer.from(CHUNK))) return void res.once("drain", pump);
    }
    res.end();
  };
  pump();
}

function upload(req, res) {
  let count = 0;
  req.on("data", (chunk) => (count += chunk.length));
  req.on("end", () => {
    const body = String(count);
    res.writeHead(200, {
      "content-type": "text/plain;charset=UTF-8",
      "content-length": Buffer.byteLength(body),
    });
    res.end(body);
  });
}

const server = http.createServer((req, res) => {
  const q = req.url.indexOf("?");
  const path = q < 0 ? req.url : req.url.slice(0, q);
  switch (path) {
    case "/":
      res.writeHead(200, { "content-type": "text/plain;charset=UTF-8", "content-length": 12 });
      res.end(HELLO);
      return;
    case "/64k":
      res.writeHead(200, {
        "content-type": "application/octet-stream",
        "content-length": CHUNK_SIZE,
      });
      res.end(BODY_64K);
      return;
    case "/stream100m":
      return stream(res);
    case "/upload":
      return upload(req, res);
    default:
      return route(req, res);
  }
});
// Node closes keep-alive connections idle for 5 s by default, which would empty
// scenario (e) while it is measured; 0 turns that off.
server.keepAliveTimeout = 0;
server.listen(port, host, () => {
  const addr = server.address();
  console.log(`node:http listening on ${addr.address}:${addr.port}`);
});
