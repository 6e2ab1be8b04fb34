// Runtime socket layer over real loopback sockets: the adapter for the
// runtime running the tests, and the node:net adapter (which runs on Deno and
// Bun too), through the same cases.
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import process from "node:process";
import { detectRuntime } from "../src/runtime/mod.ts";
import { nodeRuntime } from "../src/runtime/node.ts";
import type { Listener, Runtime, Socket } from "../src/runtime/mod.ts";
import {
  checkPattern,
  client,
  deferred,
  pattern,
  record,
  type Recorder,
  RUNTIME,
  sleep,
  until,
} from "./helpers/socket_util.ts";

const native = await detectRuntime();

test("detectRuntime picks the adapter of the running runtime", () => {
  assert.equal(native.name, RUNTIME);
});

test("Deno: a connection whose read buffer cannot be allocated is closed; accepting goes on", {
  skip: native.name !== "deno",
  timeout: 20_000,
}, async () => {
  // 1 TiB: the allocation fails (the server's own options stop at 16 MiB).
  const l = await native.listen({
    transport: "tcp",
    hostname: "127.0.0.1",
    port: 0,
    recvBytes: 2 ** 40,
  });
  const accepted: Socket[] = [];
  l.start((s) => accepted.push(s));
  try {
    for (let i = 0; i < 2; i++) {
      const c = await client(l.addr);
      await c.ended; // closed by the server, and the process still runs
      c.sock.destroy();
    }
    assert.equal(accepted.length, 0);
  } finally {
    await l.close();
  }
});

/** Binds 127.0.0.1:0, runs `body`, always closes the listener. */
async function withListener(
  rt: Runtime,
  body: (l: Listener, sockets: AsyncIterator<Socket>) => Promise<void>,
): Promise<void> {
  const l = await rt.listen({ transport: "tcp", hostname: "127.0.0.1", port: 0 });
  const queue: Socket[] = [];
  const waiting: ((s: Socket) => void)[] = [];
  l.start((s) => {
    const w = waiting.shift();
    if (w) w(s);
    else queue.push(s);
  });
  const it: AsyncIterator<Socket> = {
    next: () =>
      queue.length > 0
        ? Promise.resolve({ value: queue.shift()!, done: false })
        : new Promise((res) => waiting.push((s) => res({ value: s, done: false }))),
  };
  try {
    await body(l, it);
  } finally {
    await l.close();
  }
}

async function nextSocket(it: AsyncIterator<Socket>): Promise<Socket> {
  return (await it.next()).value;
}

for (const rt of [native, nodeRuntime]) {
  describe(`runtime adapter ${rt.name}`, () => {
    test("port 0 reports the bound port; data, addresses, end", { timeout: 20_000 }, async () => {
      await withListener(rt, async (l, it) => {
        assert.equal(l.addr.transport, "tcp");
        assert.equal(l.addr.hostname, "127.0.0.1");
        assert.ok(typeof l.addr.port === "number" && l.addr.port > 0);
        const c = await client(l.addr);
        const s = await nextSocket(it);
        const r = record(s, (chunk) => s.write(chunk)); // echo
        assert.equal(s.remoteAddr.transport, "tcp");
        assert.equal(s.remoteAddr.hostname, "127.0.0.1");
        assert.equal(s.remoteAddr.port, c.sock.localPort);
        assert.equal(s.localAddr.port, l.addr.port);
        assert.equal(s.localAddr.hostname, "127.0.0.1");
        c.sock.write("hello");
        await c.bytes(5);
        assert.equal(new TextDecoder().decode(c.data()), "hello");
        c.sock.end();
        await r.ended;
        assert.equal(s.closed, false);
        s.end();
        await c.ended;
        assert.equal(await r.closed, undefined);
        assert.equal(r.closes.length, 1);
        assert.ok(r.drains >= 1);
        c.sock.destroy();
      });
    });

    test("IPv6 ::1", { timeout: 20_000 }, async () => {
      const l = await rt.listen({ transport: "tcp", hostname: "::1", port: 0 });
      try {
        assert.equal(l.addr.hostname, "::1");
        const got = deferred<Socket>();
        l.start(got.resolve);
        const c = await client(l.addr);
        const s = await got.promise;
        const r = record(s);
        assert.equal(s.remoteAddr.hostname, "::1");
        assert.equal(s.localAddr.hostname, "::1");
        c.sock.write("v6");
        await r.bytes(2);
        s.destroy();
        await c.ended;
        c.sock.destroy();
        assert.equal(r.closes.length, 1);
      } finally {
        await l.close();
      }
    });

    test("heads and bodies merged for sending stay intact across slow readers", {
      timeout: 20_000,
    }, async () => {
      // Two sockets written in turn while neither client reads: sends are
      // partial, and what one socket still holds must not be what the next
      // flush (of either socket) merges into.
      await withListener(rt, async (l, it) => {
        const total = 8 * 1024 * 1024;
        const pairs = [];
        for (let i = 0; i < 2; i++) {
          const c = await client(l.addr);
          c.sock.pause();
          pairs.push({ c, s: await nextSocket(it), body: pattern(total, i * 7) });
        }
        for (let off = 0; off < total;) {
          for (const { s, body } of pairs) {
            // A small "head", then a large "body" part, as responses go.
            const sizes = [150, 20_000 + (off % 50_000)];
            let at = off;
            for (const n of sizes) {
              s.write(body.subarray(at, Math.min(at + n, total)));
              at = Math.min(at + n, total);
            }
          }
          off = Math.min(off + 150 + 20_000 + (off % 50_000), total);
          if (off % 3 === 0) await sleep(0);
        }
        await sleep(100);
        for (const { c } of pairs) c.sock.resume();
        for (const [i, { c, s }] of pairs.entries()) {
          await c.bytes(total);
          assert.equal(checkPattern(c.data(), i * 7), -1, `socket ${i}`);
          s.destroy();
          c.sock.destroy();
        }
      });
    });

    test("many slow readers at once: each gets its heads and bodies intact", {
      timeout: 20_000,
    }, async () => {
      // More sockets than an adapter keeps merge buffers for, each stalled
      // with a merged send in flight: those buffers must neither be shared
      // nor run out.
      await withListener(rt, async (l, it) => {
        const total = 1024 * 1024;
        const pairs = [];
        for (let i = 0; i < 24; i++) {
          const c = await client(l.addr);
          c.sock.pause();
          pairs.push({ c, s: await nextSocket(it), body: pattern(total, i) });
        }
        for (let off = 0; off < total;) {
          const n = Math.min(200 + (off % 70_000), total - off);
          for (const { s, body } of pairs) {
            s.write(body.subarray(off, off + Math.min(100, n)));
            s.write(body.subarray(off + Math.min(100, n), off + n));
          }
          off += n;
          await sleep(0);
        }
        await sleep(50);
        for (const { c } of pairs) c.sock.resume();
        for (const [i, { c, s }] of pairs.entries()) {
          await c.bytes(total);
          assert.equal(checkPattern(c.data(), i), -1, `socket ${i}`);
          await until(() => s.pendingBytes === 0, 5000, `socket ${i} drained`);
          s.destroy();
          c.sock.destroy();
        }
      });
    });

    test("64 MiB to a slow reader arrives complete and in order", { timeout: 20_000 }, async () => {
      await withListener(rt, async (l, it) => {
        const total = 64 * 1024 * 1024;
        const c = await client(l.addr);
        c.sock.pause(); // the slow reader: reads nothing at first
        const s = await nextSocket(it);
        const r = record(s);
        const body = pattern(total);
        // Mix of one big write and many small ones, all queued at once.
        s.write(body.subarray(0, 1000));
        for (let off = 1000; off < 65536; off += 100) {
          s.write(body.subarray(off, Math.min(off + 100, 65536)));
        }
        s.write(body.subarray(65536));
        assert.equal(s.pendingBytes, total);
        await sleep(150);
        // The kernel buffers hold a few MiB (the receive window does not grow
        // while the client reads nothing): most of it is still queued here.
        assert.ok(s.pendingBytes > total / 4, `pendingBytes ${s.pendingBytes}`);
        assert.equal(r.drains, 0);
        c.sock.resume();
        await c.bytes(total);
        await until(() => s.pendingBytes === 0 && r.drains === 1, 5000, "drain");
        // The kernel took it a piece at a time, and said so (the channel's
        // proof that a slow client still reads).
        assert.ok(r.sends >= 4, `onSent ${r.sends} times`);
        assert.equal(c.received, total);
        assert.equal(checkPattern(c.data()), -1);
        s.end();
        await c.ended;
        c.sock.end();
        await r.closed;
        assert.equal(r.closes.length, 1);
      });
    });

    test("a half-closing client still gets its full response", { timeout: 20_000 }, async () => {
      await withListener(rt, async (l, it) => {
        const c = await client(l.addr);
        c.sock.write("GET / HTTP/1.0\r\n\r\n");
        c.sock.end(); // FIN right after the request
        const s = await nextSocket(it);
        const r = record(s);
        await r.ended;
        assert.equal(r.received, 18);
        assert.equal(s.closed, false);
        const size = 4 * 1024 * 1024;
        s.write(pattern(size));
        s.end();
        await c.ended;
        assert.equal(c.received, size);
        assert.equal(checkPattern(c.data()), -1);
        assert.equal(await r.closed, undefined);
        assert.equal(r.closes.length, 1);
        assert.equal(r.ends, 1);
      });
    });

    test(
      "a reset mid-write gives exactly one onClose, as a plain close, and no unhandled error",
      { timeout: 20_000 },
      async () => {
        const unhandled: unknown[] = [];
        const onUnhandled = (e: unknown): void => {
          unhandled.push(e);
        };
        process.on("unhandledRejection", onUnhandled);
        process.on("uncaughtException", onUnhandled);
        try {
          await withListener(rt, async (l, it) => {
            const c = await client(l.addr);
            const s = await nextSocket(it);
            const r = record(s);
            s.write(pattern(32 * 1024 * 1024));
            await c.bytes(1);
            c.sock.resetAndDestroy();
            // A client leaving is not an I/O error of ours.
            assert.equal(await r.closed, undefined);
            assert.equal(s.closed, true);
            assert.equal(s.pendingBytes, 0);
            s.write(new Uint8Array(10)); // ignored, no throw
            s.end();
            s.destroy();
            await sleep(50);
            assert.equal(r.closes.length, 1);
          });
        } finally {
          process.off("unhandledRejection", onUnhandled);
          process.off("uncaughtException", onUnhandled);
        }
        assert.deepEqual(unhandled, []);
      },
    );

    test("a reset while idle (reading) gives one plain onClose", { timeout: 20_000 }, async () => {
      await withListener(rt, async (l, it) => {
        const c = await client(l.addr);
        const s = await nextSocket(it);
        const r = record(s);
        c.sock.write("x");
        await r.bytes(1);
        c.sock.resetAndDestroy();
        assert.equal(await r.closed, undefined);
        await sleep(20);
        assert.equal(r.closes.length, 1);
      });
    });

    test("pause() pushes back on the peer; resume() delivers everything in order", {
      timeout: 20_000,
    }, async () => {
      await withListener(rt, async (l, it) => {
        const c = await client(l.addr);
        const s = await nextSocket(it);
        const r = record(s);
        c.sock.write("a");
        await r.bytes(1);
        s.pause();
        const size = 16 * 1024 * 1024;
        c.sock.write(pattern(size, 1));
        await sleep(200);
        // At most one read that was already in flight may have been taken
        // from the kernel; none of it is delivered while paused.
        assert.equal(r.received, 1);
        assert.ok(c.sock.writableLength > 0, "the client is pushed back");
        s.resume();
        await r.bytes(size + 1);
        assert.equal(checkPattern(r.data().subarray(1), 1), -1);
        c.sock.destroy();
        await r.ended;
        s.destroy();
        assert.equal(r.closes.length, 1);
      });
    });

    test(
      "end() delivers everything to a pipelining client that keeps sending",
      { timeout: 20_000 },
      async () => {
        await withListener(rt, async (l, it) => {
          const c = await client(l.addr);
          c.sock.pause();
          const s = await nextSocket(it);
          const r = record(s);
          c.sock.write("GET /1 HTTP/1.1\r\n\r\nGET /2 HTTP/1.1\r\n\r\n");
          await r.bytes(1);
          const size = 8 * 1024 * 1024;
          s.write(pattern(size));
          s.end();
          // The client keeps pipelining after the server's FIN: without the
          // linger drain these unread bytes would make the close a reset and
          // the client would lose the unread part of the response.
          for (let i = 0; i < 100; i++) c.sock.write("GET /more HTTP/1.1\r\n\r\n");
          await sleep(100);
          c.sock.resume();
          await c.ended;
          assert.equal(c.received, size);
          assert.equal(checkPattern(c.data()), -1);
          c.sock.end();
          assert.equal(await r.closed, undefined);
          assert.equal(r.closes.length, 1);
        });
      },
    );

    test(
      "end() closes after lingerMs when the peer never sends FIN",
      { timeout: 20_000 },
      async () => {
        await withListener(rt, async (l, it) => {
          const c = await client(l.addr);
          const s = await nextSocket(it);
          const r = record(s);
          s.write(new TextEncoder().encode("bye"));
          s.end(100);
          await c.ended;
          assert.equal(s.closed, false);
          assert.equal(await r.closed, undefined);
          c.sock.destroy();
          assert.equal(new TextDecoder().decode(c.data()), "bye");
        });
      },
    );

    test("destroy() closes at once", { timeout: 20_000 }, async () => {
      await withListener(rt, async (l, it) => {
        const c = await client(l.addr);
        const s = await nextSocket(it);
        const r = record(s);
        s.destroy();
        assert.equal(s.closed, true);
        assert.equal(r.closes.length, 1);
        assert.equal(r.closes[0], undefined);
        await c.ended;
        c.sock.destroy();
        await sleep(20);
        assert.equal(r.closes.length, 1);
      });
    });

    test(
      "a FIN that arrives while paused is delivered by resume()",
      { timeout: 20_000 },
      async () => {
        await withListener(rt, async (l, it) => {
          const c = await client(l.addr);
          const s = await nextSocket(it);
          const r = record(s);
          c.sock.write("a");
          await r.bytes(1);
          s.pause();
          c.sock.end();
          await sleep(100); // time for the adapter to notice the FIN
          assert.equal(r.ends, 0, "no onEnd while paused");
          s.resume();
          await r.ended;
          assert.equal(r.ends, 1);
          assert.equal(r.received, 1);
          s.end();
          assert.equal(await r.closed, undefined);
          c.sock.destroy();
        });
      },
    );

    test(
      "start() twice throws (a socket's, a listener's); a socket destroyed before start() still gets one onClose",
      {
        timeout: 20_000,
      },
      async () => {
        await withListener(rt, async (l, it) => {
          const c = await client(l.addr);
          const s = await nextSocket(it);
          s.destroy();
          const r = record(s);
          assert.throws(() => s.start(r), /socket already started/);
          assert.throws(() => l.start(() => {}), /listener already started/);
          assert.equal(await r.closed, undefined);
          await sleep(20);
          assert.equal(r.closes.length, 1);
          await c.ended;
          c.sock.destroy();
        });
      },
    );

    test("address in use names the address and keeps the cause", { timeout: 20_000 }, async () => {
      await withListener(rt, async (l) => {
        const port = l.addr.port!;
        await assert.rejects(
          rt.listen({ transport: "tcp", hostname: "127.0.0.1", port }),
          (e: Error) => {
            assert.equal(e.message, `cannot listen on 127.0.0.1:${port}: address already in use`);
            assert.ok(e.cause !== undefined);
            return true;
          },
        );
      });
    });

    test("a bad address names the address", { timeout: 20_000 }, async () => {
      await assert.rejects(
        rt.listen({ transport: "tcp", hostname: "192.0.2.1", port: 0 }),
        /^Error: cannot listen on 192\.0\.2\.1:0: /,
      );
    });

    test(
      "setAccepting(false) holds new connections until resumed",
      { timeout: 20_000 },
      async () => {
        const l = await rt.listen({ transport: "tcp", hostname: "127.0.0.1", port: 0 });
        const got: Recorder[] = [];
        try {
          l.start((s) => got.push(record(s)));
          const c1 = await client(l.addr);
          await until(() => got.length === 1, 5000, "first connection");
          l.setAccepting(false);
          const c2 = await client(l.addr);
          const c3 = await client(l.addr);
          c2.sock.write("two");
          c3.sock.write("three");
          await sleep(150);
          assert.equal(got.length, 1, "no connection handed out while paused");
          l.setAccepting(true);
          await until(() => got.length === 3, 5000, "held connections");
          await got[1].bytes(3);
          await got[2].bytes(5);
          assert.equal(new TextDecoder().decode(got[1].data()), "two");
          assert.equal(new TextDecoder().decode(got[2].data()), "three");
          for (const c of [c1, c2, c3]) c.sock.destroy();
          await Promise.all(got.map((r) => r.ended));
          for (const r of got) r.socket.destroy();
          await Promise.all(got.map((r) => r.closed));
        } finally {
          await l.close();
        }
      },
    );
  });
}
