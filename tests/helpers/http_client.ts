/**
 * Test helpers: a server on a free loopback port, a raw-bytes client over
 * node:net (works on Deno and Bun), and a small HTTP response parser.
 */
import { Buffer } from "node:buffer";
import * as net from "node:net";
import { createServer } from "../../mod.ts";
import type { App, Options, Server } from "../../mod.ts";

/** Silent logger that records what it was told. */
export function recordingLogger(): {
  info: (...a: unknown[]) => void;
  warn: (...a: unknown[]) => void;
  error: (...a: unknown[]) => void;
  lines: string[];
} {
  const lines: string[] = [];
  const log = (level: string) => (...args: unknown[]) => {
    lines.push(
      level + ": " + args.map((a) => (a instanceof Error ? a.message : String(a))).join(" "),
    );
  };
  return { info: log("info"), warn: log("warn"), error: log("error"), lines };
}

/** A running server on 127.0.0.1 with a free port and a quiet logger; the caller closes it. */
export async function startServer(app: App, options: Options = {}): Promise<Server> {
  const server = createServer(app, {
    host: "127.0.0.1",
    port: 0,
    logger: options.logger ?? recordingLogger(),
    ...options,
  });
  await server.ready;
  server.run();
  return server;
}

/** Starts a server on 127.0.0.1 with a free port, runs `body`, always closes. */
export async function withServer(
  app: App,
  options: Options,
  body: (port: number, server: Server) => Promise<void>,
): Promise<void> {
  const server = await startServer(app, options);
  try {
    await body(server.addr.port!, server);
  } finally {
    await server.close({ timeout: 1000 });
  }
}

/** A connected raw client. */
export class RawClient {
  readonly socket: net.Socket;
  #chunks: Uint8Array[] = [];
  #size = 0;
  #ended = false;
  #waiters: Array<() => void> = [];
  error: Error | null = null;

  private constructor(socket: net.Socket) {
    this.socket = socket;
    socket.on("data", (d: Uint8Array) => {
      this.#chunks.push(new Uint8Array(d));
      this.#size += d.byteLength;
      this.#wake();
    });
    socket.on("end", () => {
      this.#ended = true;
      this.#wake();
    });
    socket.on("close", () => {
      this.#ended = true;
      this.#wake();
    });
    socket.on("error", (e: Error) => {
      this.error = e;
      this.#ended = true;
      this.#wake();
    });
  }

  /** Connects to 127.0.0.1:port. */
  static connect(port: number, host = "127.0.0.1"): Promise<RawClient> {
    return new Promise((resolve, reject) => {
      const socket = net.connect({ port, host, allowHalfOpen: true }, () => {
        socket.off("error", reject);
        resolve(new RawClient(socket));
      });
      socket.once("error", reject);
    });
  }

  #wake(): void {
    const w = this.#waiters;
    this.#waiters = [];
    for (const f of w) f();
  }

  /** Sends bytes or latin-1 text. */
  send(data: string | Uint8Array): void {
    this.socket.write(typeof data === "string" ? latin1(data) : data);
  }

  /** Half-closes the sending side. */
  shutdown(): void {
    this.socket.end();
  }

  /** Everything received so far. */
  get received(): Uint8Array {
    if (this.#chunks.length !== 1) {
      const all = new Uint8Array(this.#size);
      let o = 0;
      for (const c of this.#chunks) {
        all.set(c, o);
        o += c.byteLength;
      }
      this.#chunks = [all];
    }
    return this.#chunks[0] ?? new Uint8Array(0);
  }

  /** How many bytes were received so far (without joining them, as `received` does). */
  get receivedBytes(): number {
    return this.#size;
  }

  /** Received bytes as latin-1 text. */
  get text(): string {
    return fromLatin1(this.received);
  }

  /** True once the server closed its side (or the socket failed). */
  get ended(): boolean {
    return this.#ended;
  }

  /** Waits until `predicate()` holds or the connection ends; throws after `ms`. */
  async until(predicate: () => boolean, ms = 5000): Promise<void> {
    const deadline = Date.now() + ms;
    while (!predicate()) {
      if (this.#ended) return;
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`timed out waiting; received: ${this.text.slice(0, 300)}`);
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, Math.min(left, 50));
        this.#waiters.push(() => {
          clearTimeout(t);
          resolve();
        });
      });
    }
  }

  /** Waits for `n` complete responses (parsed) and returns them. */
  async responses(n: number, ms = 5000, head = false): Promise<ParsedResponse[]> {
    await this.until(() => parseResponses(this.received, head).length >= n, ms);
    return parseResponses(this.received, head);
  }

  /** Waits for the server to close the connection. */
  async closedByServer(ms = 5000): Promise<void> {
    await this.until(() => this.#ended, ms);
    if (!this.#ended) throw new Error("server did not close the connection");
  }

  /** Closes the client. */
  close(): void {
    this.socket.destroy();
  }
}

/** One parsed HTTP response. */
export interface ParsedResponse {
  version: string;
  status: number;
  reason: string;
  headers: Array<[string, string]>;
  header(name: string): string | undefined;
  body: string;
  /** Raw framing used: "length", "chunked", "close", "none". */
  framing: string;
}

/**
 * Parses as many complete responses as `data` holds. `headOnly` marks
 * responses to HEAD (no body). A close-delimited body counts as complete.
 */
export function parseResponses(
  data: Uint8Array,
  headOnly = false,
  closed = false,
): ParsedResponse[] {
  const text = fromLatin1(data);
  const out: ParsedResponse[] = [];
  let pos = 0;
  while (pos < text.length) {
    const end = text.indexOf("\r\n\r\n", pos);
    if (end < 0) break;
    const lines = text.slice(pos, end).split("\r\n");
    const m = /^HTTP\/(\d\.\d) (\d{3}) ?(.*)$/.exec(lines[0]);
    if (!m) throw new Error(`bad status line: ${JSON.stringify(lines[0])}`);
    const headers: Array<[string, string]> = lines.slice(1).map((l) => {
      const i = l.indexOf(":");
      return [l.slice(0, i), l.slice(i + 1).trim()];
    });
    const header = (name: string) => {
      const found = headers.filter(([k]) => k.toLowerCase() === name.toLowerCase());
      return found.length ? found.map(([, v]) => v).join(", ") : undefined;
    };
    const status = Number(m[2]);
    let bodyStart = end + 4;
    let body = "";
    let framing = "none";
    if (status >= 100 && status < 200) {
      // interim
    } else if (headOnly || status === 204 || status === 304) {
      framing = "none";
    } else if (header("transfer-encoding")?.toLowerCase() === "chunked") {
      framing = "chunked";
      let p = bodyStart;
      let complete = false;
      for (;;) {
        const le = text.indexOf("\r\n", p);
        if (le < 0) break;
        const size = parseInt(text.slice(p, le), 16);
        if (size === 0) {
          const te = text.indexOf("\r\n", le + 2);
          if (te < 0) break;
          p = te + 2;
          complete = true;
          break;
        }
        if (le + 2 + size + 2 > text.length) break;
        body += text.slice(le + 2, le + 2 + size);
        p = le + 2 + size + 2;
      }
      if (!complete) break;
      bodyStart = p;
    } else if (header("content-length") !== undefined) {
      framing = "length";
      const len = Number(header("content-length"));
      if (bodyStart + len > text.length) break;
      body = text.slice(bodyStart, bodyStart + len);
      bodyStart += len;
    } else {
      framing = "close";
      if (!closed) break;
      body = text.slice(bodyStart);
      bodyStart = text.length;
    }
    out.push({ version: m[1], status, reason: m[3], headers, header, body, framing });
    pos = bodyStart;
  }
  return out;
}

/** Encodes a latin-1 string to bytes. */
export function latin1(s: string): Uint8Array {
  const out = new Uint8Array(s.length);
  for (let i = 0; i < s.length; i++) out[i] = s.charCodeAt(i) & 0xff;
  return out;
}

/** Decodes bytes as latin-1. */
export function fromLatin1(b: Uint8Array): string {
  // Natively: waiting for a large response re-decodes all received so far.
  return Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString("latin1");
}

/** Sends `request` on a fresh connection, returns everything until the server closes. */
export async function exchange(
  port: number,
  request: string | Uint8Array,
  ms = 5000,
): Promise<string> {
  const client = await RawClient.connect(port);
  try {
    client.send(request);
    await client.closedByServer(ms);
    return client.text;
  } finally {
    client.close();
  }
}

/** Sleeps `ms` milliseconds. */
export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
