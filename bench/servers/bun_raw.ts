/**
 * The raw-TCP ceiling on Bun: `Bun.listen`, read until CRLF CRLF, write a
 * fixed response; every head found in one `data` callback is answered in one write.
 *   bun bench/servers/bun_raw.ts --port=8080
 * @module
 */
import process from "node:process";
import { listenArgs } from "./app.ts";
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

const { host, port } = listenArgs(process.argv.slice(2), (name) => process.env[name]);
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
