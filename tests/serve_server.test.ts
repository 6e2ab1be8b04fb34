// Server-level behaviour of serve()/createServer(): listeners, lifecycle hooks,
// the task runner, and fileResponse.
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as net from "node:net";
import * as os from "node:os";
import * as path from "node:path";
import { createServer, fileResponse, serve } from "../mod.ts";
import type { Addr } from "../mod.ts";
import { TaskRunner } from "../src/runner.ts";
import { blockStream } from "../src/runtime/files.ts";
import { deferred, RUNTIME, until, within } from "./helpers/socket_util.ts";
import {
  exchange,
  parseResponses,
  RawClient,
  recordingLogger,
  sleep,
  startServer,
  withServer,
} from "./helpers/http_client.ts";

function unixExchange(socketPath: string, request: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Uint8Array[] = [];
    const s = net.connect({ path: socketPath }, () => s.write(request));
    s.on("data", (d: Uint8Array) => chunks.push(new Uint8Array(d)));
    s.on("error", reject);
    s.on("close", () => resolve(chunks.map((c) => String.fromCharCode(...c)).join("")));
  });
}

describe("server: listeners and lifecycle", () => {
  test("several listeners (TCP v4, v6 and a unix socket) serve the same app; onListen per listener", async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "waitress-"));
    const sock = path.join(dir, "app.sock");
    const listened: Addr[] = [];
    const server = createServer((_req, info) => new Response(info.remoteAddr.transport), {
      listen: ["127.0.0.1:0", "[::1]:0", `unix:${sock}`],
      onListen: (addr) => listened.push(addr),
      logger: recordingLogger(),
    });
    await server.ready;
    server.run();
    try {
      assert.equal(server.addrs.length, 3);
      assert.deepEqual(server.addrs.map((a) => a.transport), ["tcp", "tcp", "unix"]);
      assert.equal(server.addrs[1].hostname, "::1");
      assert.equal(listened.length, 3);
      const v4 = await RawClient.connect(server.addrs[0].port!);
      v4.send("GET / HTTP/1.1\r\nHost: x\r\n\r\n");
      assert.equal((await v4.responses(1))[0].body, "tcp");
      v4.close();
      const v6 = await RawClient.connect(server.addrs[1].port!, "::1");
      v6.send("GET / HTTP/1.1\r\nHost: x\r\n\r\n");
      assert.equal((await v6.responses(1))[0].body, "tcp");
      v6.close();
      const text = await unixExchange(
        sock,
        "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
      );
      assert.match(text, /\r\n\r\nunix$/);
      assert.equal((fs.statSync(sock).mode & 0o777).toString(8), "600");
    } finally {
      await server.close({ timeout: 500 });
    }
    assert.equal(fs.existsSync(sock), false, "the socket file is removed on close");
    fs.rmSync(dir, { recursive: true, force: true });
  });

  test('ipv4: false on "*" (one dual-stack socket) refuses IPv4 peers, serves IPv6 ones', async () => {
    const server = createServer(() => new Response("v6"), {
      host: "*",
      port: 0,
      ipv4: false,
      logger: recordingLogger(),
    });
    await server.ready;
    server.run();
    try {
      const port = server.addr.port!;
      assert.equal(server.addr.hostname, "::");
      // Node binds it IPv6-only (refused); Deno and Bun accept and close at once.
      const v4Text = await RawClient.connect(port, "127.0.0.1").then(async (c) => {
        c.send("GET / HTTP/1.1\r\nHost: x\r\n\r\n");
        await c.closedByServer(2000);
        c.close();
        return c.text;
      }, () => "");
      assert.equal(v4Text, "");
      const v6 = await RawClient.connect(port, "::1");
      v6.send("GET / HTTP/1.1\r\nHost: x\r\n\r\n");
      assert.equal((await v6.responses(1))[0].body, "v6");
      v6.close();
    } finally {
      await server.close({ timeout: 500 });
    }
  });

  test("an address in use makes ready, run() and finished reject with the address in the message; close() resolves", async () => {
    await withServer(() => new Response("x"), {}, async (port) => {
      const inUse = (e: Error) => e.message.includes(`127.0.0.1:${port}`);
      const second = createServer(() => new Response("y"), {
        host: "127.0.0.1",
        port,
        logger: recordingLogger(),
      });
      await assert.rejects(second.ready, inUse);
      await assert.rejects(second.run(), inUse);
      await assert.rejects(second.finished, inUse);
      await second.close();
      // serve() logs it; its finished, left unawaited, must not end the process.
      const logger = recordingLogger();
      const served = serve(() => new Response("z"), { host: "127.0.0.1", port, logger });
      await assert.rejects(served.finished, inUse);
      await new Promise((resolve) => setTimeout(resolve, 0));
      assert.ok(logger.lines.some((line) => /cannot serve: .*127\.0\.0\.1/.test(line)));
      serve(() => new Response("z"), { host: "127.0.0.1", port, logger: recordingLogger() });
      await new Promise((resolve) => setTimeout(resolve, 50));
    });
  });

  test("onListen is called only once every address is bound: none when a later one is in use", async () => {
    await withServer(() => new Response("x"), {}, async (port) => {
      const listened: Addr[] = [];
      const second = createServer(() => new Response("y"), {
        listen: ["127.0.0.1:0", `127.0.0.1:${port}`],
        onListen: (addr) => listened.push(addr),
        logger: recordingLogger(),
      });
      await assert.rejects(second.ready, (e: Error) => e.message.includes(`127.0.0.1:${port}`));
      await assert.rejects(second.finished);
      assert.deepEqual(listened, []);
    });
  });

  test("a server closed, or failing to bind, no longer listens to its signal", async () => {
    const controller = new AbortController();
    const signal = controller.signal;
    const added: unknown[] = [];
    const removed: unknown[] = [];
    const add = signal.addEventListener.bind(signal);
    const remove = signal.removeEventListener.bind(signal);
    signal.addEventListener = ((type: string, listener: EventListener, o?: unknown) => {
      added.push(listener);
      add(type, listener, o as AddEventListenerOptions);
    }) as typeof signal.addEventListener;
    signal.removeEventListener = ((type: string, listener: EventListener) => {
      removed.push(listener);
      remove(type, listener);
    }) as typeof signal.removeEventListener;
    const options = { host: "127.0.0.1", port: 0, signal, logger: recordingLogger() };
    const server = createServer(() => new Response("x"), options);
    await server.ready;
    server.run();
    await server.close();
    const held = createServer(() => new Response("x"), options);
    await held.ready;
    const failing = createServer(() => new Response("x"), { ...options, port: held.addr.port });
    await assert.rejects(failing.ready);
    await assert.rejects(failing.finished);
    await held.close();
    await new Promise((resolve) => setTimeout(resolve, 0));
    assert.equal(added.length, 3);
    assert.equal(removed.length, 3);
    for (const listener of added) assert.ok(removed.includes(listener));
  });

  test("the signal option closes the server", async () => {
    const controller = new AbortController();
    const server = createServer(() => new Response("x"), {
      host: "127.0.0.1",
      port: 0,
      signal: controller.signal,
      logger: recordingLogger(),
    });
    await server.ready;
    const running = server.run();
    controller.abort();
    await running;
    await server.finished;
  });

  test("a signal aborted before createServer closes the server once it is bound", async () => {
    const server = createServer(() => new Response("x"), {
      host: "127.0.0.1",
      port: 0,
      signal: AbortSignal.abort(),
      logger: recordingLogger(),
    });
    await server.ready;
    await server.finished;
  });

  test("addr before the server is bound throws; close() twice gives the same promise", async () => {
    const server = createServer(() => new Response("x"), {
      host: "127.0.0.1",
      port: 0,
      logger: recordingLogger(),
    });
    assert.throws(() => server.addr, /the server is not bound yet: await server\.ready first/);
    await server.ready;
    assert.equal(server.addr.hostname, "127.0.0.1");
    const closing = server.close();
    assert.equal(server.close(), closing);
    await closing;
  });

  test("close({ timeout }) aborts an app that never answers once the timeout passes, and says so", async () => {
    let aborted = false;
    const logger = recordingLogger();
    const called = deferred<void>();
    const server = await startServer((_req, info) => {
      info.signal.addEventListener("abort", () => (aborted = true));
      called.resolve();
      return new Promise<Response>(() => {});
    }, { logger });
    const c = await RawClient.connect(server.addr.port!);
    c.send("GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    // In flight when close() comes (a connection whose request is not read yet is idle).
    await within(called.promise, 5000, "the app call");
    const t0 = Date.now();
    await server.close({ timeout: 200 });
    assert.ok(Date.now() - t0 < 2000);
    await c.closedByServer();
    assert.ok(aborted, "the app's signal was aborted");
    assert.deepEqual(logger.lines.filter((line) => /gracefully/.test(line)), [
      "warn: closing gracefully took longer than 200 ms: cutting 1 connection still open",
    ]);
    c.close();
  });

  test("close({ timeout }) longer than a timer can wait lets the request finish; a bad one throws", async () => {
    const called = deferred<void>();
    const server = await startServer(async () => {
      called.resolve();
      await sleep(300);
      return new Response("late");
    });
    for (const bad of [-1, NaN, "1000", null]) {
      assert.throws(
        () => server.close({ timeout: bad as number }),
        /close\(\)'s timeout must be a number of milliseconds >= 0/,
      );
    }
    const c = await RawClient.connect(server.addr.port!);
    c.send("GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    await within(called.promise, 5000, "the app call"); // in flight when close() comes
    // 2^31 ms and more would fire at once (after a TimeoutOverflowWarning).
    const closing = server.close({ timeout: 3e9 });
    const [r] = await c.responses(1, 3000);
    assert.equal(r.body, "late");
    await closing;
    c.close();
  });

  test("a class serves through its static fetch method", async () => {
    class App {
      static fetch(request: Request): Response {
        return new Response(`static ${new URL(request.url).pathname}`);
      }
    }
    await withServer(App, {}, async (port) => {
      const c = await RawClient.connect(port);
      c.send("GET /x HTTP/1.1\r\nHost: x\r\n\r\n");
      assert.equal((await c.responses(1))[0].body, "static /x");
      c.close();
    });
  });

  test("an invalid app or option throws at createServer, naming it", () => {
    assert.throws(() => createServer(42 as never), /app must be a fetch handler/);
    // Calling a class without `new` throws, so it is refused up front.
    assert.throws(
      () => createServer(class {} as never),
      /app must be a fetch handler .*, got a class without a static fetch method/,
    );
    assert.throws(() => createServer(() => new Response(""), { port: -1 }), /port/);
  });
});

describe("server: task runner", () => {
  test("maxConcurrency caps app calls in flight; the rest run in order", async () => {
    let running = 0;
    let most = 0;
    const order: number[] = [];
    const logger = recordingLogger();
    await withServer(
      async (req) => {
        running++;
        most = Math.max(most, running);
        await sleep(20);
        order.push(Number(new URL(req.url).pathname.slice(1)));
        running--;
        return new Response("ok");
      },
      { maxConcurrency: 2, logger },
      async (port) => {
        const clients = await Promise.all(Array.from({ length: 6 }, () => RawClient.connect(port)));
        clients.forEach((c, i) => c.send(`GET /${i} HTTP/1.1\r\nHost: x\r\n\r\n`));
        for (const c of clients) await c.responses(1);
        clients.forEach((c) => c.close());
      },
    );
    assert.equal(most, 2);
    assert.equal(order.length, 6);
    assert.ok(logger.lines.some((l) => /Task queue depth is \d+/.test(l)));
  });

  test("a queued request whose client has gone is not run", async () => {
    const called: string[] = [];
    // /first holds the only slot until the test lets it go: a fixed time
    // could run out on a slow machine before the resets are seen.
    const firstDone = deferred<void>();
    await withServer(
      async (req) => {
        const path = new URL(req.url).pathname;
        called.push(path);
        if (path === "/first") await firstDone.promise;
        return new Response("ok");
      },
      { maxConcurrency: 1, logger: recordingLogger() },
      async (port, server) => {
        // Counts the app calls handed to the runner (run at once or queued).
        const runner = (server as unknown as { runner: TaskRunner }).runner;
        let handed = 0;
        const run = runner.run.bind(runner);
        runner.run = (call) => (handed++, run(call));
        const first = await RawClient.connect(port);
        first.send("GET /first HTTP/1.1\r\nHost: x\r\n\r\n");
        await until(() => called.length === 1, 5000, "/first running");
        const gone = await Promise.all([0, 1, 2].map(() => RawClient.connect(port)));
        gone.forEach((c, i) => c.send(`GET /gone${i} HTTP/1.1\r\nHost: x\r\n\r\n`));
        const last = await RawClient.connect(port);
        // Every one read and queued before its client resets: node:net
        // (libuv) reports a reset that comes with the request's bytes as a
        // FIN, a half-close, whose request is still answered.
        await until(() => handed === 4, 5000, "three requests queued");
        for (const c of gone) c.socket.resetAndDestroy();
        // A bad request is answered without the runner; read after the
        // resets, its answer shows the server has seen them.
        assert.match(
          await exchange(port, "GET / HTTP/1.1\r\nHost : x\r\n\r\n"),
          /^HTTP\/1\.1 400 /,
        );
        firstDone.resolve();
        last.send("GET /last HTTP/1.1\r\nHost: x\r\n\r\n");
        const [r] = await last.responses(1);
        assert.equal(r.body, "ok");
        // Served behind /first only, not behind three requests nobody waits for.
        assert.deepEqual(called, ["/first", "/last"]);
        first.close();
        last.close();
      },
    );
  });

  test("TaskRunner passes results and errors through", async () => {
    const runner = new TaskRunner(1, recordingLogger());
    assert.equal(await runner.run(() => 5), 5);
    // No cap: the call is made at once, its result handed back as it is.
    assert.equal(new TaskRunner(Infinity, recordingLogger()).run(() => 6), 6);
    await assert.rejects(runner.run(() => Promise.reject(new Error("no"))), /no/);
    assert.equal(runner.inFlight, 0);
  });
});

/** An open file as `openFile` uses it on Deno (`Deno.FsFile`) and Node (`FileHandle`). */
interface OpenFile {
  read(...args: unknown[]): Promise<unknown>;
  close(): unknown;
}

async function openFilePrototype(file: string): Promise<OpenFile> {
  if (RUNTIME === "deno") {
    return (globalThis as unknown as { Deno: { FsFile: { prototype: OpenFile } } }).Deno.FsFile
      .prototype;
  }
  // Node does not export the FileHandle class: reach it through a handle.
  const handle = await fs.promises.open(file);
  await handle.close();
  return Object.getPrototypeOf(handle);
}

describe("fileResponse", () => {
  test("streams a file with Content-Length and closes it; a missing file rejects", async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "waitress-"));
    const file = path.join(dir, "data.bin");
    const data = new Uint8Array(700 * 1024);
    for (let i = 0; i < data.length; i++) data[i] = i % 251;
    fs.writeFileSync(file, data);
    try {
      await withServer(
        async (req) => {
          if (new URL(req.url).pathname === "/missing") {
            return await fileResponse(path.join(dir, "nope")).catch(() =>
              new Response("none", { status: 404 })
            );
          }
          return await fileResponse(file, { headers: { "content-type": "application/x-test" } });
        },
        {},
        async (port) => {
          const c = await RawClient.connect(port);
          c.send("GET / HTTP/1.1\r\nHost: x\r\n\r\nGET /missing HTTP/1.1\r\nHost: x\r\n\r\n");
          const rs = await c.responses(2);
          assert.equal(rs[0].header("content-length"), String(data.length));
          assert.equal(rs[0].header("content-type"), "application/x-test");
          assert.equal(rs[0].framing, "length");
          const body = rs[0].body;
          assert.equal(body.length, data.length);
          for (let i = 0; i < data.length; i += 4099) assert.equal(body.charCodeAt(i), data[i]);
          assert.equal(rs[1].status, 404);
          c.close();
        },
      );
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  // Bun streams the file through Bun.file, which owns the descriptor.
  test("a read that fails closes the file", { skip: RUNTIME === "bun" }, async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "waitress-"));
    const file = path.join(dir, "data.bin");
    fs.writeFileSync(file, "data");
    const prototype = await openFilePrototype(file);
    const { read } = prototype;
    let closes = 0;
    // Node's FileHandle has its close on each handle: wrap the handle's own.
    prototype.read = function (this: OpenFile) {
      const close = this.close;
      this.close = () => {
        closes++;
        return close.call(this);
      };
      return Promise.reject(new Error("disk gone"));
    };
    try {
      const response = await fileResponse(file);
      await assert.rejects(response.body!.getReader().read(), /disk gone/);
      assert.equal(closes, 1);
    } finally {
      prototype.read = read;
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  test("a block stream closes its file once: at the end, on cancel, on a failed read", async () => {
    let closes = 0;
    const close = () => closes++;
    const counts = [3, null];
    const ended = blockStream(() => Promise.resolve(counts.shift()!), close);
    assert.equal((await new Response(ended).arrayBuffer()).byteLength, 3);
    assert.equal(closes, 1);
    // A read still pending when the stream is cancelled ends (or fails, the
    // file being closed) afterwards: the file is not closed a second time.
    for (const settle of [null, new Error("closed")]) {
      closes = 0;
      const reading = deferred<void>();
      let settleRead!: () => void;
      const pending = blockStream(
        () =>
          new Promise<number | null>((resolve, reject) => {
            settleRead = () => (settle === null ? resolve(null) : reject(settle));
            reading.resolve();
          }),
        close,
      );
      const reader = pending.getReader();
      const read = reader.read();
      await reading.promise;
      await reader.cancel();
      settleRead();
      assert.deepEqual(await read, { done: true, value: undefined });
      assert.equal(closes, 1);
    }
    closes = 0;
    const failing = blockStream(() => Promise.reject(new Error("disk gone")), close);
    await assert.rejects(new Response(failing).arrayBuffer());
    assert.equal(closes, 1);
  });

  test("a directory or a FIFO rejects at once (a FIFO is never opened)", async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "waitress-"));
    const fifo = path.join(dir, "pipe");
    try {
      assert.equal(spawnSync("mkfifo", [fifo]).status, 0);
      for (const target of [dir, fifo]) {
        let timer: ReturnType<typeof setTimeout> | undefined;
        const timeout = new Promise<never>((_, reject) => {
          timer = setTimeout(() => reject(new Error(`${target}: still opening`)), 3000);
        });
        try {
          await assert.rejects(
            Promise.race([fileResponse(target), timeout]),
            /is not a regular file/,
          );
        } finally {
          clearTimeout(timer);
        }
      }
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe("server: pipelined writes", () => {
  test("responses to requests pipelined in one packet come back in one read when small", async () => {
    await withServer(() => new Response("x"), {}, async (port) => {
      const c = await RawClient.connect(port);
      let reqs = "";
      for (let i = 0; i < 16; i++) reqs += "GET / HTTP/1.1\r\nHost: x\r\n\r\n";
      c.send(reqs);
      const rs = await c.responses(16);
      assert.equal(rs.length, 16);
      assert.equal(parseResponses(c.received).length, 16);
      c.close();
    });
  });
});
