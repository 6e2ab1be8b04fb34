/**
 * The server's own per-request cost without any network: a Channel driven by
 * an in-memory socket, fed batches of pipelined requests.
 *   deno run -A bench/channel.ts    |    bun bench/channel.ts
 * @module
 */
import process from "node:process";
import { Channel } from "../src/channel.ts";
import type { Addr, Socket, SocketHandler } from "../src/runtime/types.ts";
import type { Handler } from "../src/task.ts";
import { channelOwner } from "../tests/helpers/channel_owner.ts";

const REQUEST = "GET /hello?x=1 HTTP/1.1\r\nHost: localhost:8080\r\nUser-Agent: bench/1.0\r\n" +
  "Accept: */*\r\nAccept-Encoding: gzip, deflate\r\nConnection: keep-alive\r\n\r\n";
const DEPTH = Number(process.env.DEPTH ?? 16);
const BATCHES = 5_000;
const ROUNDS = 7;
/** Rounds run first and not counted: the JIT needs ~25,000 requests to settle. */
const WARMUP_REQUESTS = 40_000;

class MemorySocket implements Socket {
  readonly remoteAddr: Addr = { transport: "tcp", hostname: "127.0.0.1", port: 50000 };
  readonly localAddr: Addr = { transport: "tcp", hostname: "127.0.0.1", port: 8080 };
  readonly pendingBytes = 0;
  closed = false;
  handler!: SocketHandler;
  written = 0;
  writes = 0;
  onWrite: () => void = () => {};
  start(handler: SocketHandler): void {
    this.handler = handler;
  }
  write(data: Uint8Array): void {
    this.written += data.byteLength;
    this.writes++;
    this.onWrite();
  }
  pause(): void {}
  resume(): void {}
  end(): void {}
  destroy(): void {}
}

async function run(name: string, handler: Handler): Promise<void> {
  const rounds: number[] = [];
  const cpus: number[] = [];
  let writes = 0;
  for (let done = 0; done < WARMUP_REQUESTS; done += BATCHES * DEPTH) await round(handler);
  for (let i = 0; i < ROUNDS; i++) {
    const r = await round(handler);
    rounds.push(r.us);
    cpus.push(r.cpu);
    writes = r.writes;
  }
  rounds.sort((a, b) => a - b);
  cpus.sort((a, b) => a - b);
  console.log(
    `${name.padEnd(28)} ${rounds[ROUNDS >> 1].toFixed(2)} µs/request wall, ${
      cpus[ROUNDS >> 1].toFixed(2)
    } µs CPU (all threads; median of ${ROUNDS}; ${writes.toFixed(2)} writes per ${DEPTH} requests)`,
  );
}

async function round(handler: Handler): Promise<{ us: number; cpu: number; writes: number }> {
  const socket = new MemorySocket();
  const channel = new Channel(channelOwner(handler), socket);
  channel.start();
  const batch = new TextEncoder().encode(REQUEST.repeat(DEPTH));
  // One batch to learn how many bytes DEPTH responses take.
  await new Promise<void>((resolve) => {
    socket.onWrite = resolve;
    socket.handler.onData(batch.slice());
  });
  await new Promise((r) => setTimeout(r, 10));
  const perBatch = socket.written;
  const t0 = performance.now();
  const cpu0 = process.cpuUsage();
  let done = 0;
  await new Promise<void>((resolve) => {
    const target = perBatch * (BATCHES + 1);
    socket.onWrite = () => {
      if (socket.written >= target) resolve();
      else if (socket.written >= perBatch * (done + 2)) {
        done++;
        // A real socket delivers the next read on a later turn, not inside write().
        queueMicrotask(() => socket.handler.onData(batch.slice()));
      }
    };
    socket.handler.onData(batch.slice());
  });
  const cpu = process.cpuUsage(cpu0);
  return {
    us: (performance.now() - t0) * 1000 / (BATCHES * DEPTH),
    cpu: (cpu.user + cpu.system) / (BATCHES * DEPTH),
    writes: socket.writes / (BATCHES + 1),
  };
}

await run("hello (string body)", () => new Response("Hello world\n"));
await run("hello (no body)", () => new Response(null, { status: 204 }));
await run(
  "reads url + header",
  (req) => new Response(new URL(req.url).pathname + req.headers.get("user-agent")),
);
