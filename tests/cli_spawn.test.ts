// End-to-end tests of the real CLI: spawned with the runtime running the
// tests (process.execPath is deno under `deno test`, bun under `bun test`),
// talking raw HTTP over loopback, stopped with signals.
import { after, describe, test } from "node:test";
import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import { connect, createServer as createNetServer, type Server as NetServer } from "node:net";
import process from "node:process";
import { fileURLToPath } from "node:url";
import { dirname, join } from "node:path";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { REPEAT_WINDOW_MS } from "../cli/platform.ts";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const isDeno = typeof (globalThis as { Deno?: unknown }).Deno !== "undefined";
const FIXTURE = "tests/fixtures/cli_app.ts";

/** A running CLI process with its output collected. */
class Cli {
  readonly child: ChildProcess;
  stdout = "";
  stderr = "";
  readonly exited: Promise<{ code: number | null; signal: string | null }>;
  #waiters: Array<() => void> = [];

  constructor(
    args: string[],
    runtimeArgs = isDeno ? ["run", "-A", "cli/mod.ts"] : ["run", "cli/mod.ts"],
  ) {
    this.child = spawn(process.execPath, [...runtimeArgs, ...args], {
      cwd: root,
      env: { ...process.env, NO_COLOR: "1" },
      stdio: ["ignore", "pipe", "pipe"],
    });
    this.child.stdout!.on("data", (chunk: Uint8Array) => {
      this.stdout += new TextDecoder().decode(chunk);
      this.#wake();
    });
    this.child.stderr!.on("data", (chunk: Uint8Array) => {
      this.stderr += new TextDecoder().decode(chunk);
      this.#wake();
    });
    this.exited = new Promise((resolve) => {
      this.child.on("exit", (code, signal) => {
        resolve({ code, signal });
        this.#wake();
      });
    });
    live.add(this);
    this.exited.then(() => live.delete(this));
  }

  #wake(): void {
    for (const wake of this.#waiters.splice(0)) wake();
  }

  /** Waits until stdout+stderr match `pattern` (fails after `ms`). */
  async waitFor(pattern: RegExp, ms = 20000): Promise<RegExpMatchArray> {
    const deadline = Date.now() + ms;
    while (true) {
      const match = (this.stdout + "\n" + this.stderr).match(pattern);
      if (match) return match;
      if (this.child.exitCode !== null || this.child.signalCode !== null) {
        throw new Error(`exited before ${pattern}; stdout: ${this.stdout} stderr: ${this.stderr}`);
      }
      const left = deadline - Date.now();
      if (left <= 0) {
        throw new Error(
          `timed out waiting for ${pattern}; stdout: ${this.stdout} stderr: ${this.stderr}`,
        );
      }
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.#waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
  }

  /**
   * Sends a signal. Through process.kill: Deno's `child.kill()` reports the
   * child as killed by that signal even when it handled it and exited 0.
   */
  signal(signal: "SIGINT" | "SIGTERM"): void {
    process.kill(this.child.pid!, signal);
  }

  /** Waits for the first `Serving on http://HOST:PORT` line and returns the port. */
  async port(): Promise<number> {
    const match = await this.waitFor(/Serving on http:\/\/[^\s]+:(\d+)/);
    return Number(match[1]);
  }

  /** Waits for the exit (fails after `ms`). */
  async exit(ms = 20000): Promise<{ code: number | null; signal: string | null }> {
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`no exit; stderr: ${this.stderr}`)), ms);
    });
    try {
      return await Promise.race([this.exited, timeout]);
    } finally {
      clearTimeout(timer);
    }
  }
}

const live = new Set<Cli>();
after(() => {
  for (const cli of live) cli.child.kill("SIGKILL");
});

/** Runs the CLI to completion (for the commands that exit by themselves). */
async function run(
  args: string[],
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const cli = new Cli(args);
  const { code } = await cli.exit();
  return { code, stdout: cli.stdout, stderr: cli.stderr };
}

/** Sends raw `request` bytes and returns everything the server sends until it closes. */
function exchange(port: number, request: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: "127.0.0.1", port });
    let text = "";
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`no complete response; got ${JSON.stringify(text)}`));
    }, 15000);
    socket.on("connect", () => socket.write(request));
    socket.on("data", (chunk: Uint8Array) => (text += new TextDecoder().decode(chunk)));
    socket.on("error", (error) => {
      clearTimeout(timer);
      reject(error);
    });
    socket.on("close", () => {
      clearTimeout(timer);
      resolve(text);
    });
  });
}

/**
 * Asks for `/` until an answer's body satisfies `done` (false after `ms`). A
 * connection the kernel queued on a dead worker's socket fails or gets
 * nothing: retried.
 */
async function servedUntil(
  port: number,
  done: (body: string) => boolean,
  ms = 20000,
): Promise<boolean> {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    let answer: [number, string] = [0, ""];
    try {
      answer = await get(port, "/");
    } catch { /* retried below */ }
    if (answer[0] === 0) {
      await new Promise((resolve) => setTimeout(resolve, 100));
      continue;
    }
    assert.equal(answer[0], 200);
    if (done(answer[1])) return true;
  }
  return false;
}

/** GET `path` with extra header lines; returns [status, parsed JSON body or text]. */
async function get(port: number, path: string, headers = ""): Promise<[number, string]> {
  const text = await exchange(
    port,
    `GET ${path} HTTP/1.1\r\nHost: example.test\r\n${headers}Connection: close\r\n\r\n`,
  );
  const status = Number(text.slice(9, 12));
  return [status, text.slice(text.indexOf("\r\n\r\n") + 4)];
}

/** The one stderr line of a failed command. */
function oneLine(stderr: string): string {
  const lines = stderr.split("\n").filter((line) => line.trim() !== "");
  assert.equal(lines.length, 1, `expected one line on stderr, got: ${stderr}`);
  return lines[0];
}

describe("CLI: commands that exit at once", () => {
  test("--help prints every flag and exits 0", async () => {
    const { code, stdout } = await run(["--help"]);
    assert.equal(code, 0);
    assert.match(stdout, /^Usage: waitress/);
    assert.match(stdout, /--max-request-body-size=SIZE/);
    assert.match(stdout, /--trusted-proxy-headers=LIST/);
  });

  const failures: Array<[string, string[], RegExp]> = [
    [
      "an unknown flag suggests the closest",
      ["--prot=1", FIXTURE],
      /^Error: unknown flag --prot \(did you mean --port\?\)/,
    ],
    [
      "a bad value names the flag",
      ["--port=abc", FIXTURE],
      /^Error: --port must be an integer, got "abc"/,
    ],
    [
      "a range error names the flag",
      ["--port=70000", FIXTURE],
      /^Error: --port must be an integer from 0 to 65535, got 70000/,
    ],
    [
      "a conflict names the flags",
      ["--port=1", "--listen=127.0.0.1:2", FIXTURE],
      /^Error: --host or --port may not be set if --listen is set/,
    ],
    ["no app", ["--port=0"], /^Error: Specify an application/],
    [
      "module not found",
      ["--port=0", "tests/fixtures/nope.ts"],
      /^Error: module not found: tests\/fixtures\/nope\.ts/,
    ],
    [
      "export missing",
      ["--port=0", `${FIXTURE}:nope`],
      /^Error: tests\/fixtures\/cli_app\.ts has no export "nope"/,
    ],
    [
      "export not callable",
      ["--port=0", `${FIXTURE}:notAnApp`],
      /^Error: the export "notAnApp" .* is a number, not a fetch handler/,
    ],
    [
      "--call on a non-function",
      ["--call", "--port=0", `${FIXTURE}:notAnApp`],
      /^Error: --call: .* is not callable/,
    ],
  ];
  for (const [name, args, pattern] of failures) {
    test(`${name}: one line on stderr, exit 1`, async () => {
      const { code, stderr } = await run(args);
      assert.equal(code, 1);
      assert.match(oneLine(stderr), pattern);
    });
  }

  test("port in use: one line on stderr, exit 1", async () => {
    const blocker: NetServer = createNetServer();
    await new Promise<void>((resolve) => blocker.listen(0, "127.0.0.1", resolve));
    const port = (blocker.address() as { port: number }).port;
    try {
      const { code, stderr } = await run([`--listen=127.0.0.1:${port}`, FIXTURE]);
      assert.equal(code, 1);
      assert.match(oneLine(stderr), new RegExp(`^Error: .*127\\.0\\.0\\.1:${port}.*in use`));
    } finally {
      await new Promise((resolve) => blocker.close(resolve));
    }
  });

  test("the second of two addresses in use: no Serving on line for the first, exit 1", async () => {
    const blocker: NetServer = createNetServer();
    await new Promise<void>((resolve) => blocker.listen(0, "127.0.0.1", resolve));
    const port = (blocker.address() as { port: number }).port;
    try {
      const args = ["--listen=127.0.0.1:0", `--listen=127.0.0.1:${port}`, FIXTURE];
      const { code, stdout, stderr } = await run(args);
      assert.equal(code, 1);
      assert.equal(stdout, "");
      assert.match(oneLine(stderr), /in use/);
    } finally {
      await new Promise((resolve) => blocker.close(resolve));
    }
  });
});

/** A port that was free a moment ago (the kernel does not hand it out again at once). */
async function freePort(): Promise<number> {
  const probe: NetServer = createNetServer();
  await new Promise<void>((resolve) => probe.listen(0, "127.0.0.1", resolve));
  const port = (probe.address() as { port: number }).port;
  await new Promise((resolve) => probe.close(resolve));
  return port;
}

describe("CLI: serving", () => {
  test("serves the default export, prints where, SIGTERM exits 0", async () => {
    const cli = new Cli(["--host=127.0.0.1", "--port=0", FIXTURE]);
    const port = await cli.port();
    assert.match(cli.stdout, /^Serving on http:\/\/127\.0\.0\.1:\d+$/m);
    const [status, body] = await get(port, "/hello?x=1");
    assert.equal(status, 200);
    const json = JSON.parse(body);
    assert.equal(json.which, "default");
    assert.equal(json.url, "http://example.test/hello?x=1");
    cli.signal("SIGTERM");
    assert.deepEqual(await cli.exit(), { code: 0, signal: null });
  });

  test("stdout closed by its reader: the server keeps serving and stops on SIGTERM", async () => {
    const port = await freePort();
    const cli = new Cli([`--listen=127.0.0.1:${port}`, FIXTURE]);
    cli.child.stdout!.destroy(); // its "Serving on" line meets a closed pipe
    assert.ok(await servedUntil(port, () => true), `not served; stderr: ${cli.stderr}`);
    cli.signal("SIGTERM");
    assert.deepEqual(await cli.exit(), { code: 0, signal: null });
  });

  test("a named { fetch } export, several listeners, SIGINT exits 0", async () => {
    const cli = new Cli(["--listen=127.0.0.1:0", "--listen=127.0.0.1:0", `${FIXTURE}:object`]);
    await cli.waitFor(/(Serving on http:\/\/127\.0\.0\.1:\d+\n){2}/);
    const ports = [...cli.stdout.matchAll(/:(\d+)\n/g)].map((m) => Number(m[1]));
    assert.equal(ports.length, 2);
    for (const port of ports) {
      assert.equal(JSON.parse((await get(port, "/"))[1]).which, "object");
    }
    cli.signal("SIGINT");
    assert.equal((await cli.exit()).code, 0);
  });

  test("--call with an async factory", async () => {
    const cli = new Cli(["--call", "--host=127.0.0.1", "--port=0", `${FIXTURE}:asyncFactory`]);
    const port = await cli.port();
    assert.equal(JSON.parse((await get(port, "/"))[1]).which, "asyncFactory");
    cli.signal("SIGTERM");
    assert.equal((await cli.exit()).code, 0);
  });

  test("the first signal lets an in-flight request finish", async () => {
    const cli = new Cli(["--host=127.0.0.1", "--port=0", FIXTURE]);
    const port = await cli.port();
    const pending = get(port, "/slow");
    // The signal must find the request in flight: sent before the app has
    // it, the close would find the connection idle (or not yet accepted).
    await cli.waitFor(/slow started/);
    cli.signal("SIGTERM");
    const [status, body] = await pending;
    assert.equal(status, 200);
    assert.equal(body, "slow done\n");
    assert.equal((await cli.exit()).code, 0);
  });

  for (const threads of ["1", "2"]) {
    test(`--graceful-timeout bounds the wait for a response in flight (--threads ${threads})`, async () => {
      const args = ["--graceful-timeout=1", `--threads=${threads}`, "--host=127.0.0.1", "--port=0"];
      const cli = new Cli([...args, FIXTURE]);
      const port = await cli.port();
      if (threads === "2") await cli.waitFor(/2 workers sharing the port/);
      // /hang answers after 20 s: the close drops it after 1.
      const pending = exchange(port, "GET /hang HTTP/1.1\r\nHost: x\r\n\r\n").catch(() => "");
      await cli.waitFor(/hang started/);
      const started = Date.now();
      cli.signal("SIGTERM");
      assert.equal((await cli.exit(8000)).code, 0);
      assert.ok(Date.now() - started < 6000, `exited after ${Date.now() - started} ms`);
      assert.doesNotMatch(await pending, /late/);
    });
  }

  test("a second signal exits at once", async () => {
    const cli = new Cli(["--host=127.0.0.1", "--port=0", FIXTURE]);
    const port = await cli.port();
    const socket = connect({ host: "127.0.0.1", port });
    socket.on("error", () => {});
    socket.write("GET /hang HTTP/1.1\r\nHost: x\r\n\r\n");
    // In flight before the first signal, else the graceful close ends at once (exit 0).
    await cli.waitFor(/hang started/);
    cli.signal("SIGINT");
    await cli.waitFor(/SIGINT: closing gracefully/);
    // Within REPEAT_WINDOW_MS it would be taken for a copy of the first.
    await new Promise((resolve) => setTimeout(resolve, REPEAT_WINDOW_MS + 100));
    cli.signal("SIGINT");
    const { code } = await cli.exit(5000);
    socket.destroy();
    assert.equal(code, 130);
  });

  for (const threads of ["1", "2"]) {
    test(`one stop delivered twice at once (a process group's Ctrl-C) still closes gracefully (--threads ${threads})`, async () => {
      const cli = new Cli([`--threads=${threads}`, "--host=127.0.0.1", "--port=0", FIXTURE]);
      const port = await cli.port();
      if (threads === "2") await cli.waitFor(/2 workers sharing the port/);
      const pending = get(port, "/slow");
      await cli.waitFor(/slow started/); // in flight when the signals come
      cli.signal("SIGINT");
      cli.signal("SIGINT");
      cli.signal("SIGTERM");
      const [status, body] = await pending;
      assert.equal(status, 200);
      assert.equal(body, "slow done\n");
      assert.equal((await cli.exit()).code, 0);
      assert.match(cli.stderr, /within a second of the last stop signal: taken for the same stop/);
    });
  }

  test("the server's warnings about options name the flags given", async () => {
    const cli = new Cli(["--host=127.0.0.1", "--port=0", "--send-bytes=1", FIXTURE]);
    await cli.port();
    await cli.waitFor(/tuning option/);
    assert.match(cli.stderr, /^--send-bytes is a waitress tuning option with no meaning here/m);
    cli.signal("SIGTERM");
    assert.equal((await cli.exit()).code, 0);
  });

  test("trusted proxy flags rewrite the client and scheme; untrusted headers are dropped", async () => {
    const cli = new Cli([
      "--host=127.0.0.1",
      "--port=0",
      "--trusted-proxy=127.0.0.1",
      "--trusted-proxy-headers=x-forwarded-for,x-forwarded-proto,x-forwarded-host",
      FIXTURE,
    ]);
    const port = await cli.port();
    const [, body] = await get(
      port,
      "/p",
      "X-Forwarded-For: 203.0.113.9\r\nX-Forwarded-Proto: https\r\nX-Forwarded-Host: app.example\r\n",
    );
    const json = JSON.parse(body);
    assert.equal(json.remote, "203.0.113.9");
    assert.equal(json.scheme, "https");
    assert.equal(json.url, "https://app.example/p");
    const [status] = await get(port, "/p", "X-Forwarded-Proto: gopher\r\n");
    assert.equal(status, 400);
    cli.signal("SIGTERM");
    assert.equal((await cli.exit()).code, 0);
  });

  test("a signal while the app loads ends the start-up: exit 0", async () => {
    process.env.WAITRESS_TEST_SLOW_MS = "5000";
    const cli = new Cli(["--host=127.0.0.1", "--port=0", "tests/fixtures/cli_slow_load.ts"]);
    delete process.env.WAITRESS_TEST_SLOW_MS;
    // The app's module says when it starts its slow load: by then the CLI's
    // handler is installed (a fixed wait could signal a runtime still
    // starting, which the signal kills) and nothing is served yet.
    await cli.waitFor(/loading slowly/);
    cli.signal("SIGTERM");
    assert.deepEqual(await cli.exit(3000), { code: 0, signal: null });
    assert.match(cli.stderr, /SIGTERM: closing gracefully/);
    assert.equal(cli.stdout, "");
  });

  test("--threads 2: a signal while one worker serves and one loads lets its request finish", async () => {
    const dir = mkdtempSync(join(tmpdir(), "waitress-cli-"));
    try {
      const port = await freePort();
      process.env.WAITRESS_TEST_SLOW_MS = "5000";
      process.env.WAITRESS_TEST_COUNT = join(dir, "loads");
      const cli = new Cli([
        "--threads=2",
        `--listen=127.0.0.1:${port}`,
        "tests/fixtures/cli_slow_load.ts",
      ]);
      delete process.env.WAITRESS_TEST_SLOW_MS;
      delete process.env.WAITRESS_TEST_COUNT;
      assert.ok(await servedUntil(port, () => true), `not served; stderr: ${cli.stderr}`);
      const slow = get(port, "/slow");
      await cli.waitFor(/slow request started/); // in flight when the signal comes
      cli.signal("SIGTERM");
      assert.deepEqual(await slow, [200, "done"]);
      assert.deepEqual(await cli.exit(), { code: 0, signal: null });
      assert.match(cli.stderr, /SIGTERM: closing 2 workers gracefully/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  for (const threads of ["1", "2"]) {
    test(`an error nothing catches is logged and the server goes on (--threads ${threads})`, async () => {
      const cli = new Cli([`--threads=${threads}`, "--host=127.0.0.1", "--port=0", FIXTURE]);
      const port = await cli.port();
      if (threads === "2") await cli.waitFor(/2 workers sharing the port/);
      // Every isolate, before: the kernel spreads connections at random.
      const seen = new Set<string>();
      for (let i = 0; i < 100 && seen.size < Number(threads); i++) {
        seen.add(JSON.parse((await get(port, "/"))[1]).isolate);
      }
      assert.equal(seen.size, Number(threads));
      assert.deepEqual(await get(port, "/reject"), [200, "rejecting\n"]);
      assert.deepEqual(await get(port, "/crash"), [200, "crashing\n"]);
      await cli.waitFor(
        /Uncaught error outside any response \(the server goes on\)[^]*crash requested/,
      );
      assert.match(cli.stderr, /rejection requested/);
      // The same isolates serve on: none died.
      for (let i = 0; i < 6; i++) {
        assert.ok(seen.has(JSON.parse((await get(port, "/"))[1]).isolate));
      }
      assert.doesNotMatch(cli.stderr, /died/);
      cli.signal("SIGTERM");
      assert.equal((await cli.exit()).code, 0);
    });
  }

  test("--threads 2: a worker that exits, or goes silent, is replaced; SIGTERM exits", async () => {
    const args = ["--threads=2", "--worker-timeout=2", "--host=127.0.0.1", "--port=0"];
    const cli = new Cli([...args, FIXTURE]);
    const port = await cli.port();
    await cli.waitFor(/2 workers sharing the port/);
    const seen = new Set<string>();
    for (let i = 0; i < 6; i++) seen.add(JSON.parse((await get(port, "/"))[1]).isolate);
    // A worker exits: it is replaced at once (Deno's says so before it goes,
    // Bun reports it). Then one blocks its event loop for good, which Bun's
    // terminate() stops and Deno's does not (see workers.ts): on Deno, for
    // longer than --worker-timeout only.
    await get(port, "/exit");
    await cli.waitFor(/worker \d+ died \(exited\); restarting/);
    await servedUntil(port, (body) => !seen.has(JSON.parse(body).isolate));
    assert.match((await get(port, isDeno ? "/stall" : "/block"))[1], /^(stalling|blocking)\n$/);
    await cli.waitFor(/worker \d+ died \(no answer for 2 s: .*\); restarting/, 15000);
    const fresh = await servedUntil(port, (body) => !seen.has(JSON.parse(body).isolate));
    assert.ok(fresh, "a replacement worker answered");
    cli.signal("SIGTERM");
    assert.equal((await cli.exit()).code, 0);
  });

  test("Deno without --unstable-net: --threads warns how to enable it and serves with one", {
    skip: !isDeno,
  }, async () => {
    // --no-config drops deno.json's "unstable": ["net"]; an import map stands in for it.
    const dir = mkdtempSync(join(tmpdir(), "waitress-cli-"));
    const map = join(dir, "import_map.json");
    writeFileSync(map, JSON.stringify({ imports: { "@waitress/core": join(root, "mod.ts") } }));
    try {
      const cli = new Cli(
        ["--threads=2", "--host=127.0.0.1", "--port=0", FIXTURE],
        ["run", "-A", "--no-config", `--import-map=${map}`, "cli/mod.ts"],
      );
      const port = await cli.port();
      assert.match(
        cli.stderr,
        /--threads 2 needs SO_REUSEPORT.*--unstable-net.*Serving with one thread/,
      );
      assert.equal((await get(port, "/"))[0], 200);
      cli.signal("SIGTERM");
      assert.equal((await cli.exit()).code, 0);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
