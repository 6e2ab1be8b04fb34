/**
 * The raw-TCP ceiling on Deno: `Deno.listen`, read until CRLF CRLF, write a
 * fixed response; every head found in one read is answered in one write.
 *   deno run -A bench/servers/deno_raw.ts --port=8080
 * @module
 */
import { listenArgs } from "./app.ts";
import { countHeads, responses } from "./raw_response.ts";

const { host, port } = listenArgs(Deno.args, (name) => Deno.env.get(name));

async function writeAll(conn: Deno.Conn, data: Uint8Array): Promise<void> {
  // Deno's write() may be partial.
  let off = 0;
  while (off < data.length) off += await conn.write(off === 0 ? data : data.subarray(off));
}

async function handle(conn: Deno.TcpConn): Promise<void> {
  conn.setNoDelay(true);
  // Small enough that (e) does not measure a big idle buffer; 16 pipelined
  // heads are well under 1 KiB.
  const buf = new Uint8Array(8 * 1024);
  let state = 0;
  try {
    for (;;) {
      const n = await conn.read(buf);
      if (n === null) break;
      const packed = countHeads(buf, n, state);
      state = packed & 3;
      const heads = packed >>> 2;
      if (heads > 0) await writeAll(conn, responses(heads));
    }
  } catch {
    // reset by the peer: nothing to do but close
  } finally {
    try {
      conn.close();
    } catch {
      // already closed
    }
  }
}

const listener = Deno.listen({ hostname: host, port });
console.log(`Deno.listen raw listening on ${host}:${listener.addr.port}`);
for await (const conn of listener) handle(conn);
