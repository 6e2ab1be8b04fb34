/**
 * An in-memory `Socket` for driving a `Channel` in tests: keeps what was
 * written as text and records pause/resume calls.
 * @module
 */
import type { Addr, Socket, SocketHandler } from "../../src/runtime/types.ts";

/** A socket that records instead of sending. */
export class RecordingSocket implements Socket {
  readonly remoteAddr: Addr = { transport: "tcp", hostname: "127.0.0.1", port: 50000 };
  readonly localAddr: Addr = { transport: "tcp", hostname: "127.0.0.1", port: 8080 };
  /** Output the kernel has not taken: a test sets it to play a slow reader. */
  pendingBytes = 0;
  closed = false;
  ended = false;
  handler!: SocketHandler;
  events: string[] = [];
  out = "";
  start(handler: SocketHandler): void {
    this.handler = handler;
  }
  write(data: Uint8Array): void {
    this.out += new TextDecoder("latin1").decode(data);
  }
  pause(): void {
    this.events.push("pause");
  }
  resume(): void {
    this.events.push("resume");
  }
  end(): void {
    this.ended = true;
  }
  destroy(): void {
    this.closed = true;
  }
}
