/**
 * The raw-TCP ceiling on Bun: `Bun.listen`, read until CRLF CRLF, write a
 * fixed response; every head found in one `data` callback is answered in one write.
 *   bun bench/servers/bun_raw.ts --port=8080 [--fetch-floor]
 *
 * With `--fetch-floor` it also does, for every head, what no server that
 * hands the app a `Request` and takes back a `Response` can skip on Bun, and
 * nothing else: a copy of a prepared `Request` (the cheapest real one, as
 * this server makes them for repeated requests), the app's call, its body's
 * bytes and its header list read. No parsing, validation or response head
 * is built: its pipelined rate bounds what any fetch-API server on Bun can
 * reach against the raw ceiling.
 * @module
 */
import process from "node:process";
import { app, listenArgs } from "./app.ts";
import { countHeads, responses } from "./raw_response.ts";

interface RawSocket {
  data: State;
  write(data: Uint8Array, byteOffset?: number, byteLength?: number): number;
  end(): void;
  setNoDelay(noDelay: boolean): boolean;
}
interface State {
  scan: number;
  pending: Uint8Array | null;
}
declare const Bun: {
  listen(options: {
    hostname: string;
    port: number;
    allowHalfOpen: boolean;
    socket: {
      open(socket: RawSocket): void;
      data(socket: RawSocket, chunk: Uint8Array): void;
      drain(socket: RawSocket): void;
      end(socket: RawSocket): void;
      error(socket: RawSocket, error: Error): void;
    };
  }): { port: number };
};

// Bun's write() writes what the kernel takes now and drops the rest: keep the
// remainder and retry on drain.
function send(socket: RawSocket, data: Uint8Array): void {
  const state = socket.data;
  if (state.pending) {
    const joined = new Uint8Array(state.pending.length + data.length);
    joined.set(state.pending);
    joined.set(data, state.pending.length);
    state.pending = joined;
    return;
  }
  const written = socket.write(data);
  if (written >= 0 && written < data.length) state.pending = data.subarray(written);
}

function flush(socket: RawSocket): void {
  const pending = socket.data.pending;
  if (!pending) return;
  const written = socket.write(pending);
  if (written < 0) socket.data.pending = null;
  else socket.data.pending = written < pending.length ? pending.subarray(written) : null;
}

const args = process.argv.slice(2);
const { host, port } = listenArgs(args, (name) => process.env[name]);
const floor = args.includes("--fetch-floor");
const template = new Request(`http://${host}:${port}/`);
template.headers.append("Host", `${host}:${port}`);
const peek = (Bun as unknown as { peek(value: Promise<Uint8Array>): unknown }).peek;
let fieldCount = 0;
const countField = () => void fieldCount++;

/** The per-request work of a fetch-API server that `--fetch-floor` adds. */
function fetchWork(): void {
  const response = app.fetch(template.clone()) as Response;
  if (!(peek(response.bytes()) instanceof Uint8Array)) throw new Error("body not held");
  response.headers.forEach(countField);
}
const listener = Bun.listen({
  hostname: host,
  port,
  allowHalfOpen: true,
  socket: {
    open(socket) {
      socket.data = { scan: 0, pending: null };
      socket.setNoDelay(true);
    },
    data(socket, chunk) {
      const packed = countHeads(chunk, chunk.length, socket.data.scan);
      socket.data.scan = packed & 3;
      const heads = packed >>> 2;
      if (floor) { for (let i = 0; i < heads; i++) fetchWork(); }
      if (heads > 0) send(socket, responses(heads));
    },
    drain: flush,
    end(socket) {
      socket.end();
    },
    error() {
      // reset by the peer: Bun closes the socket
    },
  },
});
console.log(`Bun.listen raw listening on ${host}:${listener.port}`);
