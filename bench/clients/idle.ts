/**
 * Scenario (e) client: holds many idle keep-alive connections open while the
 * bench reads the server's RSS. Driven by lines on stdin, answers on stdout:
 *   start            -> warms the server (WARMUP requests on one connection), prints "warm"
 *   "open"           -> opens COUNT connections, each sends one GET / and reads
 *                       the answer, then stays idle; prints "ready <opened> <failed>"
 *   "status"         -> prints "open <n> closed <n>" (closed = the server hung up)
 *   end of stdin     -> closes everything and exits
 *   deno run -A bench/clients/idle.ts --port=8080 --count=10000
 * @module
 */

function flag(name: string, fallback: string): string {
  const hit = Deno.args.find((arg) => arg.startsWith(`--${name}=`));
  return hit ? hit.slice(name.length + 3) : fallback;
}

const host = flag("host", "127.0.0.1");
const port = Number(flag("port", "8080"));
const count = Number(flag("count", "10000"));
const warmup = Number(flag("warmup", "200"));
const batch = Number(flag("batch", "200"));
const request = new TextEncoder().encode(`GET / HTTP/1.1\r\nHost: ${host}:${port}\r\n\r\n`);

async function writeAll(conn: Deno.Conn, data: Uint8Array): Promise<void> {
  let off = 0;
  while (off < data.length) off += await conn.write(data.subarray(off));
}

/** Reads one hello response: a head, then the 12-byte body. */
async function readHello(conn: Deno.Conn, buf: Uint8Array): Promise<void> {
  let filled = 0;
  for (;;) {
    const n = await conn.read(buf.subarray(filled));
    if (n === null) throw new Error("closed by the server");
    filled += n;
    for (let i = 3; i < filled; i++) {
      if (buf[i] === 10 && buf[i - 1] === 13 && buf[i - 2] === 10 && buf[i - 3] === 13) {
        if (filled >= i + 1 + 12) return;
        break;
      }
    }
    if (filled === buf.length) throw new Error("response too large");
  }
}

async function warm(): Promise<void> {
  const conn = await Deno.connect({ hostname: host, port });
  const buf = new Uint8Array(4096);
  try {
    for (let i = 0; i < warmup; i++) {
      await writeAll(conn, request);
      await readHello(conn, buf);
    }
  } finally {
    conn.close();
  }
}

const conns: Deno.Conn[] = [];
let closedByServer = 0;

async function openOne(): Promise<void> {
  const conn = await Deno.connect({ hostname: host, port });
  const buf = new Uint8Array(1024);
  try {
    await writeAll(conn, request);
    await readHello(conn, buf);
  } catch (error) {
    conn.close();
    throw error;
  }
  conns.push(conn);
  // A pending read tells us if the server drops the idle connection.
  conn.read(buf).then(
    (n) => {
      if (n === null) closedByServer++;
    },
    () => closedByServer++,
  );
}

async function openAll(): Promise<[number, number]> {
  let failed = 0;
  for (let started = 0; started < count; started += batch) {
    const size = Math.min(batch, count - started);
    const results = await Promise.allSettled(Array.from({ length: size }, openOne));
    failed += results.filter((r) => r.status === "rejected").length;
  }
  return [conns.length, failed];
}

const out = (line: string) => Deno.stdout.writeSync(new TextEncoder().encode(line + "\n"));
await warm();
out("warm");
const lines = Deno.stdin.readable.pipeThrough(new TextDecoderStream());
let pending = "";
for await (const text of lines) {
  pending += text;
  let nl;
  while ((nl = pending.indexOf("\n")) >= 0) {
    const command = pending.slice(0, nl).trim();
    pending = pending.slice(nl + 1);
    if (command === "open") {
      const [opened, failed] = await openAll();
      out(`ready ${opened} ${failed}`);
    } else if (command === "status") {
      out(`open ${conns.length - closedByServer} closed ${closedByServer}`);
    }
  }
}
for (const conn of conns) {
  try {
    conn.close();
  } catch {
    // already closed by the server
  }
}
