// Runtime listeners: unix sockets (stale file, perms, removal), reusePort,
// the Deno unstable-net detection, listener close and held connections.
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { createServer } from "node:net";
import { spawnSync } from "node:child_process";
import {
  existsSync,
  lstatSync,
  mkdtempSync,
  readdirSync,
  renameSync,
  rmSync,
  statSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import process from "node:process";
import { join } from "node:path";
import { detectRuntime } from "../src/runtime/mod.ts";
import { nodeRuntime } from "../src/runtime/node.ts";
import type { Socket } from "../src/runtime/mod.ts";
import { bindError } from "../src/runtime/messages.ts";

/** Real Node before 22.12, whose listen() ignores reusePort. */
const nodeWithoutReusePort = !("Deno" in globalThis) && !("Bun" in globalThis) &&
  ((major, minor) => major < 22 || (major === 22 && minor < 12))(
    ...(process.versions.node.split(".").map(Number) as [number, number]),
  );
import {
  client,
  deferred,
  record,
  type Recorder,
  RUNTIME,
  sleep,
  until,
} from "./helpers/socket_util.ts";

const native = await detectRuntime();

/** Leaves a socket file nobody listens on at `path` (a crashed server's). */
async function makeStaleSocket(path: string): Promise<void> {
  const server = createServer();
  const bound = join(path + ".live");
  await new Promise<void>((resolve) => server.listen(bound, resolve));
  renameSync(bound, path); // the server no longer knows this name
  await new Promise<void>((resolve) => server.close(() => resolve()));
  assert.ok(lstatSync(path).isSocket());
}

/** Runs `body` with a fresh temporary directory, removed afterwards. */
async function inTempDir(body: (dir: string) => Promise<void>): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), "waitress-rt-"));
  try {
    await body(dir);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

for (const rt of [native, nodeRuntime]) {
  describe(`runtime listener ${rt.name}`, () => {
    test("unix socket: stale file removed, perms applied, file removed on close", {
      timeout: 20_000,
    }, async () => {
      await inTempDir(async (dir) => {
        const path = join(dir, "s.sock");
        await makeStaleSocket(path);
        const l = await rt.listen({ transport: "unix", path, perms: 0o600 });
        try {
          assert.deepEqual(l.addr, { transport: "unix", path });
          assert.equal(statSync(path).mode & 0o777, 0o600);
          const got = deferred<Socket>();
          l.start(got.resolve);
          const c = await client(l.addr);
          const s = await got.promise;
          assert.equal(s.remoteAddr.transport, "unix");
          assert.equal(typeof s.remoteAddr.path, "string");
          assert.deepEqual(s.localAddr, { transport: "unix", path });
          const r = record(s, (chunk) => s.write(chunk));
          c.sock.write("over unix");
          await c.bytes(9);
          assert.equal(new TextDecoder().decode(c.data()), "over unix");
          c.sock.end();
          await r.ended;
          s.end();
          await c.ended;
          assert.equal(await r.closed, undefined);
          c.sock.destroy();
        } finally {
          await l.close();
        }
        await until(() => !existsSync(path), 2000, "socket file removal");
      });
    });

    test("unix socket: a listener taking the path over is not cut off when the old one closes", {
      timeout: 20_000,
    }, async () => {
      await inTempDir(async (dir) => {
        const path = join(dir, "s.sock");
        const old = await rt.listen({ transport: "unix", path });
        const replacement = await rt.listen({ transport: "unix", path, perms: 0o640 });
        const got = deferred<Socket>();
        replacement.start(got.resolve);
        old.start(() => assert.fail("the old listener no longer owns the path"));
        await old.close();
        assert.equal(statSync(path).mode & 0o777, 0o640, "the new socket file is still there");
        const c = await client(replacement.addr);
        const s = await got.promise;
        assert.deepEqual(s.localAddr, { transport: "unix", path });
        c.sock.destroy();
        s.destroy();
        await replacement.close();
        await until(() => !existsSync(path), 2000, "socket file removal");
        assert.deepEqual(readdirSync(dir), [], "no temporary name is left behind");
      });
    });

    test("unix socket in a directory that does not exist: the error says so", {
      timeout: 20_000,
    }, async () => {
      await inTempDir(async (dir) => {
        const path = join(dir, "missing", "s.sock");
        await assert.rejects(
          rt.listen({ transport: "unix", path }),
          (e: Error) => {
            // Node's libuv says EACCES: the adapter finds the real reason.
            assert.equal(e.message, `cannot listen on unix:${path}: no such file or directory`);
            return true;
          },
        );
      });
    });

    test("unix socket: a regular file in the way is not removed", { timeout: 20_000 }, async () => {
      await inTempDir(async (dir) => {
        const path = join(dir, "not-a-socket");
        writeFileSync(path, "keep me");
        await assert.rejects(
          rt.listen({ transport: "unix", path }),
          (e: Error) => e.message.startsWith(`cannot listen on unix:${path}: `),
        );
        assert.ok(lstatSync(path).isFile());
      });
    });

    test("reusePort: two listeners share one port", { timeout: 20_000 }, async () => {
      if (rt === nodeRuntime && nodeWithoutReusePort) {
        await assert.rejects(
          rt.listen({ transport: "tcp", hostname: "127.0.0.1", port: 0, reusePort: true }),
          /^Error: cannot listen on 127\.0\.0\.1:0: reusePort needs Node 22\.12 or later/,
        );
        return;
      }
      const a = await rt.listen({
        transport: "tcp",
        hostname: "127.0.0.1",
        port: 0,
        reusePort: true,
      });
      const port = a.addr.port!;
      const b = await rt.listen({ transport: "tcp", hostname: "127.0.0.1", port, reusePort: true });
      const counts = [0, 0];
      const socks: Recorder[] = [];
      try {
        assert.equal(b.addr.port, port);
        a.start((s) => {
          counts[0]++;
          socks.push(record(s));
        });
        b.start((s) => {
          counts[1]++;
          socks.push(record(s));
        });
        // The kernel spreads connections by a hash of the 4-tuple: with 40
        // connections the chance that one listener gets none is 2^-39.
        const clients = [];
        for (let i = 0; i < 40; i++) clients.push(await client({ ...a.addr }));
        await until(() => counts[0] + counts[1] === 40, 5000, "40 connections");
        assert.ok(counts[0] > 0 && counts[1] > 0, `split ${counts}`);
        for (const c of clients) c.sock.resetAndDestroy();
        await Promise.all(socks.map((r) => r.closed));
      } finally {
        await a.close();
        await b.close();
      }
    });

    test(
      "close() stops accepting and leaves live connections alone",
      { timeout: 20_000 },
      async () => {
        const l = await rt.listen({ transport: "tcp", hostname: "127.0.0.1", port: 0 });
        const got = deferred<Socket>();
        l.start(got.resolve);
        const c = await client(l.addr);
        const s = await got.promise;
        const r = record(s, (chunk) => s.write(chunk));
        await l.close();
        await assert.rejects(client(l.addr), /ECONNREFUSED|refused/i);
        c.sock.write("still here");
        await c.bytes(10);
        c.sock.end();
        await r.ended;
        s.destroy();
        await c.ended;
        c.sock.destroy();
      },
    );

    test("bytes and FIN that arrive before start() are delivered in order", {
      timeout: 20_000,
    }, async () => {
      const l = await rt.listen({ transport: "tcp", hostname: "127.0.0.1", port: 0 });
      try {
        const got = deferred<Socket>();
        l.start(got.resolve); // handed out, but not started yet
        const c = await client(l.addr);
        c.sock.write("early");
        c.sock.end();
        const s = await got.promise;
        await sleep(100);
        const order: string[] = [];
        const r = record(s, () => order.push("data"));
        await r.ended;
        order.push("end");
        assert.equal(new TextDecoder().decode(r.data()), "early");
        assert.equal(order[order.length - 1], "end");
        s.end();
        await c.ended;
        assert.equal(await r.closed, undefined);
        c.sock.destroy();
      } finally {
        await l.close();
      }
    });

    test("a connection that resets while held is not handed out alive", {
      timeout: 20_000,
    }, async () => {
      const l = await rt.listen({ transport: "tcp", hostname: "127.0.0.1", port: 0 });
      const got: Recorder[] = [];
      try {
        l.setAccepting(false);
        l.start((s) => got.push(record(s)));
        const c = await client(l.addr);
        await sleep(50);
        c.sock.resetAndDestroy();
        await sleep(100);
        assert.equal(got.length, 0);
        l.setAccepting(true);
        await sleep(100);
        // Bun accepts eagerly and drops it from its hold queue; Deno leaves
        // it in the kernel backlog (and node:net may hand it out before
        // reading), so there it is handed out and closes at its first read.
        if (rt.name === "bun") assert.equal(got.length, 0);
        await Promise.all(got.map((r) => r.closed));
      } finally {
        await l.close();
      }
    });

    test("once close() resolves, the port can be bound again (an accept was pending)", {
      timeout: 20_000,
    }, async () => {
      for (let i = 0; i < 3; i++) {
        const l = await rt.listen({ transport: "tcp", hostname: "127.0.0.1", port: 0 });
        l.start(() => {});
        const port = l.addr.port!;
        await sleep(10);
        await l.close();
        const again = await rt.listen({ transport: "tcp", hostname: "127.0.0.1", port });
        await again.close();
      }
    });

    test("while paused, a connection that arrives is held and said to wait", {
      timeout: 20_000,
    }, async () => {
      const l = await rt.listen({ transport: "tcp", hostname: "127.0.0.1", port: 0 });
      const got: Socket[] = [];
      let told = 0;
      l.start((s) => got.push(s), () => told++);
      l.setAccepting(false);
      assert.equal(l.waiting, false);
      const c = await client(l.addr);
      await until(() => told > 0);
      assert.equal(l.waiting, true);
      assert.equal(got.length, 0);
      l.setAccepting(true);
      await until(() => got.length === 1);
      assert.equal(l.waiting, false);
      got[0].destroy();
      c.sock.destroy();
      await l.close();
    });

    test("close() while paused closes the held connections", { timeout: 20_000 }, async () => {
      const l = await rt.listen({ transport: "tcp", hostname: "127.0.0.1", port: 0 });
      l.setAccepting(false);
      const got: Socket[] = [];
      l.start((s) => got.push(s));
      const c = await client(l.addr);
      await sleep(50);
      await l.close();
      // Bun and node:net closed the accepted-but-held socket (FIN); on Deno
      // it was still in the kernel backlog, which resets it.
      await Promise.race([c.ended, c.closed]);
      c.sock.destroy();
      assert.equal(got.length, 0);
    });
  });
}

test("Deno: reusePort without --unstable-net throws a clear error instead of exiting", {
  skip: RUNTIME !== "deno",
  timeout: 30_000,
}, () => {
  const dir = mkdtempSync(join(tmpdir(), "waitress-rt-"));
  try {
    const script = join(dir, "probe.ts");
    const mod = new URL("../src/runtime/deno.ts", import.meta.url).href;
    writeFileSync(
      script,
      `import { denoRuntime } from ${JSON.stringify(mod)};
try {
  const l = await denoRuntime.listen({ transport: "tcp", hostname: "127.0.0.1", port: 0, reusePort: true });
  console.log("bound");
  await l.close();
} catch (e) {
  console.log("error: " + (e as Error).message);
}
`,
    );
    const deno = (globalThis as unknown as { Deno: { execPath(): string } }).Deno.execPath();
    const run = (flags: string[]) =>
      spawnSync(deno, ["run", "--no-config", "-A", ...flags, script], {
        cwd: dir,
        encoding: "utf8",
        env: { ...process.env, NO_COLOR: "1" },
      });
    const without = run([]);
    assert.equal(without.status, 0, without.stderr);
    assert.match(without.stdout, /^error: cannot listen on 127\.0\.0\.1:0: reusePort needs/);
    assert.match(without.stdout, /--unstable-net/);
    const withFlag = run(["--unstable-net"]);
    assert.equal(withFlag.status, 0, withFlag.stderr);
    assert.equal(withFlag.stdout.trim(), "bound");
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("bind errors name the address and the reason, keeping the cause", () => {
  const tcp = { transport: "tcp", hostname: "::1", port: 80 } as const;
  const eacces = Object.assign(new Error("listen EACCES"), { code: "EACCES" });
  const e1 = bindError(tcp, eacces);
  assert.equal(e1.message, "cannot listen on [::1]:80: permission denied");
  assert.equal(e1.cause, eacces);
  const denied = new Error("Permission denied (os error 13)");
  denied.name = "PermissionDenied";
  assert.equal(bindError(tcp, denied).message, "cannot listen on [::1]:80: permission denied");
  const inUse = Object.assign(new Error("in use"), { code: "EADDRINUSE" });
  assert.equal(
    bindError({ transport: "unix", path: "/tmp/x.sock" }, inUse).message,
    "cannot listen on unix:/tmp/x.sock: address already in use",
  );
  const notCapable = new Error("Requires net access");
  notCapable.name = "NotCapable"; // Deno without --allow-net
  assert.equal(
    bindError(tcp, notCapable).message,
    "cannot listen on [::1]:80: permission denied (run with --allow-net)",
  );
  const notFound = new Error("No such file or directory (os error 2)");
  notFound.name = "NotFound";
  assert.equal(
    bindError({ transport: "unix", path: "/no/x.sock" }, notFound).message,
    "cannot listen on unix:/no/x.sock: no such file or directory",
  );
  assert.equal(
    bindError(tcp, new Error("something odd")).message,
    "cannot listen on [::1]:80: something odd",
  );
});
