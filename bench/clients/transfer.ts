/**
 * Scenario (d) client: 100 MiB downloads or uploads, each over its own
 * connection, one after the other (--repeat, default 1), timed from the first
 * connect to the last response byte, printed as one JSON line.
 * A raw-socket client (1 MiB reads and writes) so that the client is not
 * what limits MB/s.
 *   deno run -A bench/clients/transfer.ts --mode=download|upload --port=8080 [--repeat=5]
 * @module
 */

const TOTAL = 100 * 1024 * 1024;
const BLOCK = 1024 * 1024;
const TIMEOUT_MS = 60_000;

function flag(name: string, fallback: string): string {
  const hit = Deno.args.find((arg) => arg.startsWith(`--${name}=`));
  return hit ? hit.slice(name.length + 3) : fallback;
}

const mode = flag("mode", "download");
const host = flag("host", "127.0.0.1");
const port = Number(flag("port", "8080"));
const repeat = Number(flag("repeat", "1"));
const latin1 = new TextDecoder("latin1");

async function writeAll(conn: Deno.Conn, data: Uint8Array): Promise<void> {
  let off = 0;
  while (off < data.length) off += await conn.write(data.subarray(off));
}

/** Finds CRLF CRLF; returns the index just past it, or -1. */
function headEnd(bytes: Uint8Array, length: number): number {
  for (let i = 3; i < length; i++) {
    if (bytes[i] === 10 && bytes[i - 1] === 13 && bytes[i - 2] === 10 && bytes[i - 3] === 13) {
      return i + 1;
    }
  }
  return -1;
}

interface Head {
  status: number;
  contentLength: number | null;
  chunked: boolean;
}

function parseHead(text: string): Head {
  const lines = text.split("\r\n");
  const status = Number(lines[0].split(" ")[1]);
  let contentLength: number | null = null;
  let chunked = false;
  for (const line of lines.slice(1)) {
    const colon = line.indexOf(":");
    if (colon < 0) continue;
    const name = line.slice(0, colon).trim().toLowerCase();
    const value = line.slice(colon + 1).trim().toLowerCase();
    if (name === "content-length") contentLength = Number(value);
    else if (name === "transfer-encoding") chunked = value.includes("chunked");
  }
  return { status, contentLength, chunked };
}

/**
 * Reads one response. The body is counted, not kept (except its first bytes,
 * for the upload's answer). A chunked body ends with CRLF "0" CRLF CRLF; the
 * payloads here are all letters, so watching the last 7 bytes is enough.
 */
async function readResponse(
  conn: Deno.Conn,
): Promise<{ head: Head; bodyBytes: number; body: string }> {
  const buf = new Uint8Array(BLOCK);
  let filled = 0;
  let end = -1;
  while (end < 0) {
    if (filled === buf.length) throw new Error("response head too large");
    const n = await conn.read(buf.subarray(filled));
    if (n === null) throw new Error("connection closed before the response head");
    filled += n;
    end = headEnd(buf, filled);
  }
  const head = parseHead(latin1.decode(buf.subarray(0, end)));
  let bodyBytes = filled - end;
  let first = latin1.decode(buf.subarray(end, Math.min(filled, end + 64)));
  const tail = new Uint8Array(7);
  const pushTail = (bytes: Uint8Array) => {
    if (bytes.length >= 7) tail.set(bytes.subarray(bytes.length - 7));
    else {
      tail.copyWithin(0, bytes.length);
      tail.set(bytes, 7 - bytes.length);
    }
  };
  pushTail(buf.subarray(end, filled));
  const done = () => {
    if (head.contentLength !== null) return bodyBytes >= head.contentLength;
    if (head.chunked) return latin1.decode(tail) === "\r\n0\r\n\r\n";
    return false; // close-delimited: read to EOF
  };
  while (!done()) {
    const n = await conn.read(buf);
    if (n === null) break;
    bodyBytes += n;
    if (first.length < 64) first += latin1.decode(buf.subarray(0, Math.min(n, 64)));
    pushTail(buf.subarray(0, n));
  }
  return { head, bodyBytes, body: first };
}

async function download(conn: Deno.Conn): Promise<number> {
  await writeAll(
    conn,
    new TextEncoder().encode(`GET /stream100m HTTP/1.1\r\nHost: ${host}:${port}\r\n\r\n`),
  );
  const { head, bodyBytes } = await readResponse(conn);
  if (head.status !== 200) throw new Error(`status ${head.status}`);
  // Chunked framing adds a few bytes per chunk; the payload must be all there.
  if (bodyBytes < TOTAL) throw new Error(`short body: ${bodyBytes} bytes`);
  return TOTAL;
}

async function upload(conn: Deno.Conn): Promise<number> {
  const head = `POST /upload HTTP/1.1\r\nHost: ${host}:${port}\r\n` +
    `Content-Type: application/octet-stream\r\nContent-Length: ${TOTAL}\r\n\r\n`;
  const block = new Uint8Array(BLOCK).fill(0x63);
  // Read concurrently so an early error response cannot deadlock the writer.
  const response = readResponse(conn);
  response.catch(() => {});
  await writeAll(conn, new TextEncoder().encode(head));
  for (let sent = 0; sent < TOTAL; sent += BLOCK) await writeAll(conn, block);
  const { head: got, body: raw } = await response;
  if (got.status !== 200) throw new Error(`status ${got.status}`);
  // A chunked answer reads "9\r\n104857600\r\n0\r\n\r\n": keep the data lines.
  const body = got.chunked ? raw.split("\r\n").filter((_, i) => i % 2 === 1).join("") : raw;
  if (body.trim() !== String(TOTAL)) throw new Error(`server counted ${body.trim()}`);
  return TOTAL;
}

const timer = setTimeout(() => {
  console.log(JSON.stringify({ error: `timed out after ${TIMEOUT_MS} ms` }));
  Deno.exit(2);
}, TIMEOUT_MS);
try {
  const start = performance.now();
  let bytes = 0;
  for (let i = 0; i < repeat; i++) {
    const conn = await Deno.connect({ hostname: host, port });
    conn.setNoDelay(true);
    try {
      bytes += mode === "upload" ? await upload(conn) : await download(conn);
    } finally {
      conn.close();
    }
  }
  const ms = performance.now() - start;
  console.log(JSON.stringify({ mode, bytes, ms, repeat }));
} catch (error) {
  console.log(JSON.stringify({ error: String(error) }));
  Deno.exitCode = 1;
} finally {
  clearTimeout(timer);
}
