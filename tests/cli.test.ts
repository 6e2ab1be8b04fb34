// The CLI's pure parts: flag parsing, help, suggestions, app resolution.
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { dirname, join } from "node:path";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import {
  allFlags,
  CliError,
  flagify,
  flagifyOptionLine,
  flagOf,
  helpText,
  parseArgs,
  suggestFlag,
} from "../cli/args.ts";
import { loadApp, moduleSpecifier, splitAppSpec } from "../cli/app.ts";
import { STRING_OPTIONS } from "../src/adjustments.ts";

const here = dirname(fileURLToPath(import.meta.url));

describe("parseArgs", () => {
  test("the waitress-serve spellings", () => {
    const parsed = parseArgs([
      "--host=127.0.0.1",
      "--port",
      "8000",
      "--url-scheme=https",
      "--url-prefix=/app",
      "--ident=me",
      "--backlog=10",
      "--recv-bytes=16k",
      "--connection-limit=5",
      "--cleanup-interval=1",
      "--channel-timeout=2.5",
      "--no-log-socket-errors",
      "--max-request-header-size=1m",
      "--max-request-body-size=2m",
      "--expose-tracebacks",
      "--no-ipv6",
      "--ipv4",
      "--trusted-proxy=10.0.0.1",
      "--trusted-proxy-count=2",
      "--trusted-proxy-headers=x-forwarded-for x-forwarded-proto",
      "--log-untrusted-proxy-headers",
      "--no-clear-untrusted-proxy-headers",
      "--channel-request-lookahead=1",
      "--server-name=example.com",
      "--max-concurrency=16",
      "--outbuf-high-watermark=1m",
      "app.ts:handler",
    ]);
    assert.equal(parsed.app, "app.ts:handler");
    assert.equal(parsed.threads, 1);
    assert.equal(parsed.call, false);
    assert.deepEqual(parsed.options, {
      host: "127.0.0.1",
      port: 8000,
      urlScheme: "https",
      urlPrefix: "/app",
      ident: "me",
      backlog: 10,
      recvBytes: 16384,
      connectionLimit: 5,
      cleanupInterval: 1,
      channelTimeout: 2.5,
      logSocketErrors: false,
      maxRequestHeaderSize: 1048576,
      maxRequestBodySize: 2097152,
      exposeTracebacks: true,
      ipv6: false,
      ipv4: true,
      trustedProxy: "10.0.0.1",
      trustedProxyCount: 2,
      trustedProxyHeaders: ["x-forwarded-for", "x-forwarded-proto"],
      logUntrustedProxyHeaders: true,
      clearUntrustedProxyHeaders: false,
      channelRequestLookahead: 1,
      serverName: "example.com",
      maxConcurrency: 16,
      outbufHighWatermark: 1048576,
    });
  });

  test("--listen repeats; unix sockets and perms", () => {
    const parsed = parseArgs([
      "--listen=127.0.0.1:1",
      "--listen",
      "[::1]:2 127.0.0.1:3",
      "--listen=unix:/tmp/x.sock",
      "--unix-socket-perms=660",
      "app.ts",
    ]);
    assert.deepEqual(parsed.options, {
      listen: ["127.0.0.1:1", "[::1]:2", "127.0.0.1:3", "unix:/tmp/x.sock"],
      unixSocketPerms: 0o660,
    });
  });

  test("--threads, --workers, --call, --app, --help, -h, --version", () => {
    assert.equal(parseArgs(["--threads=4", "a.ts"]).threads, 4);
    assert.equal(parseArgs(["--workers", "3", "a.ts"]).threads, 3);
    assert.equal(parseArgs(["--call", "a.ts:make"]).call, true);
    assert.equal(parseArgs(["--app=a.ts:x"]).app, "a.ts:x");
    assert.equal(parseArgs(["--help"]).help, true);
    assert.equal(parseArgs(["-h"]).help, true);
    assert.equal(parseArgs(["--version"]).version, true);
    assert.equal(parseArgs([]).app, undefined);
  });

  test("--graceful-timeout: seconds, 30 by default, 0 for no limit", () => {
    assert.equal(parseArgs(["a.ts"]).gracefulTimeout, 30);
    assert.equal(parseArgs(["--graceful-timeout=0", "a.ts"]).gracefulTimeout, 0);
    assert.throws(
      () => parseArgs(["--graceful-timeout=soon", "a.ts"]),
      /--graceful-timeout must be a whole number of seconds from 0 \(no limit\) to 86400/,
    );
  });

  test("--worker-timeout: seconds, 30 by default, 0 for never", () => {
    assert.equal(parseArgs(["a.ts"]).workerTimeout, 30);
    assert.equal(parseArgs(["--worker-timeout=5", "a.ts"]).workerTimeout, 5);
    assert.equal(parseArgs(["--worker-timeout", "0", "a.ts"]).workerTimeout, 0);
    for (const bad of ["-1", "1.5", "abc", "86401"]) {
      assert.throws(
        () => parseArgs([`--worker-timeout=${bad}`, "a.ts"]),
        /--worker-timeout must be a whole number of seconds from 0 \(never\) to 86400/,
        bad,
      );
    }
  });

  test("ignored waitress flags are accepted", () => {
    const parsed = parseArgs([
      "--send-bytes=1",
      "--asyncore-loop-timeout=1",
      "--asyncore-use-poll",
      "--inbuf-overflow=512k",
      "--outbuf-overflow=1m",
      "a.ts",
    ]);
    assert.deepEqual(parsed.options, {
      sendBytes: 1,
      asyncoreLoopTimeout: 1,
      asyncoreUsePoll: true,
      inbufOverflow: 524288,
      outbufOverflow: 1048576,
    });
  });

  test("boolean flags take an inline value too", () => {
    assert.deepEqual(parseArgs(["--ipv6=no", "--expose-tracebacks=yes", "a.ts"]).options, {
      ipv6: false,
      exposeTracebacks: true,
    });
  });

  test("-- ends the flags", () => {
    assert.equal(parseArgs(["--", "--weird.ts"]).app, "--weird.ts");
  });

  const errors: Array<[string[], RegExp]> = [
    [["--prot=1", "a.ts"], /^unknown flag --prot \(did you mean --port\?\)$/],
    [["--max-request-body=1", "a.ts"], /did you mean --max-request-body-size\?/],
    [
      ["--maxRequestBodySize=1"],
      /unknown flag --maxRequestBodySize \(did you mean --max-request-body-size\?\)/,
    ],
    [["--trusted_proxy=1"], /did you mean --trusted-proxy\?/],
    [["--no-expose-traceback"], /did you mean --no-expose-tracebacks\?/],
    [["--frobnicate"], /^unknown flag --frobnicate$/],
    [["-x"], /^unknown flag -x/],
    [["--no-port"], /unknown flag --no-port/],
    [["--threads"], /--threads needs a value/],
    [["a.ts", "--port"], /--port needs a value/],
    [["--port=abc", "a.ts"], /^--port must be an integer, got "abc"$/],
    [["--threads=0", "a.ts"], /--threads must be an integer from 1 to 1024, got "0"/],
    [["--workers=many", "a.ts"], /--workers must be an integer/],
    [["--ipv6=maybe", "a.ts"], /--ipv6 must be true\/false/],
    [["--max-request-body-size=lots", "a.ts"], /^--max-request-body-size must be a size/],
    [["--no-ipv6=1", "a.ts"], /--no-ipv6 takes no value/],
    [["--call=1", "a.ts"], /--call takes no value/],
    [["--help=1"], /--help takes no value/],
    [["--version=x"], /--version takes no value/],
    [["a.ts", "b.ts"], /Provide only one app \(got "a\.ts", "b\.ts"\)/],
  ];
  for (const [argv, pattern] of errors) {
    test(`error: ${argv.join(" ")}`, () => {
      assert.throws(() => parseArgs(argv), (error: unknown) => {
        assert.ok(error instanceof CliError);
        assert.match(error.message, pattern);
        return true;
      });
    });
  }
});

describe("help and messages", () => {
  test("--help lists every flag with its default", () => {
    const help = helpText();
    for (const name of Object.keys(STRING_OPTIONS)) {
      if (name === "threads") continue;
      assert.ok(help.includes(flagOf(name)), `help lacks ${flagOf(name)}`);
    }
    for (const flag of ["--help", "--call", "--threads", "--workers", "--app", "--no-ipv6"]) {
      assert.ok(help.includes(flag), `help lacks ${flag}`);
    }
    assert.match(help, /--port=PORT +TCP port .*\[default: 8080\]/);
    assert.match(help, /--connection-limit=INT .*\[default: 100\]/);
    assert.match(help, /--max-request-body-size=SIZE .*\[default: 1073741824\]/);
    assert.match(help, /--channel-timeout=SECS .*\[default: 120\]/);
    assert.match(help, /--ident=STR .*\[default: waitress\]/);
    assert.match(help, /--unix-socket-perms=PERMS .*\[default: 600\]/);
    assert.match(help, /--threads=INT, --workers=INT .*\[default: 1\]/);
    assert.match(help, /^Usage: waitress \[OPTIONS\] MODULE\[:NAME\]/);
  });

  test("every flag the help shows is accepted", () => {
    const flags = allFlags();
    for (const match of helpText().matchAll(/--[a-z][a-z0-9-]+/g)) {
      assert.ok(flags.includes(match[0]) || match[0] === "--unstable-net", match[0]);
    }
  });

  test("suggestions", () => {
    assert.equal(suggestFlag("--hots"), "--host");
    assert.equal(suggestFlag("--unix-sockt"), "--unix-socket");
    assert.equal(suggestFlag("--zzzzzzzzzzzz"), undefined);
  });

  test("validation messages name flags", () => {
    assert.equal(
      flagify("host or port may not be set if listen is set."),
      "--host or --port may not be set if --listen is set.",
    );
    assert.equal(
      flagify("maxRequestBodySize must be an integer >= 0, got -1"),
      "--max-request-body-size must be an integer >= 0, got -1",
    );
    assert.equal(
      flagify('listen must be an IP address, a host name, "localhost" or "*", got "x!"'),
      '--listen must be an IP address, a host name, "localhost" or "*", got "x!"',
    );
    // A boolean that is false came from its --no- flag.
    assert.equal(
      flagify('listen names an IPv4 address but ipv4 is false, got "127.0.0.1:80"'),
      '--listen names an IPv4 address but --no-ipv4 is given, got "127.0.0.1:80"',
    );
    assert.equal(
      flagify('host defaults to "0.0.0.0", an IPv4 address, but ipv4 is false: give host "::"'),
      '--host defaults to "0.0.0.0", an IPv4 address, but --no-ipv4 is given: give host "::"',
    );
    // The server's warnings about options; other log lines stay as they are.
    assert.equal(
      flagifyOptionLine("sendBytes is a waitress tuning option with no meaning here; ignored"),
      "--send-bytes is a waitress tuning option with no meaning here; ignored",
    );
    assert.equal(
      flagifyOptionLine("trustedProxy is set without trustedProxyHeaders: set trustedProxyHeaders"),
      "--trusted-proxy is set without --trusted-proxy-headers: set --trusted-proxy-headers",
    );
    for (
      const line of ["Exception while serving GET /maxRequestBodySize", "Socket error on ::1", ""]
    ) {
      assert.equal(flagifyOptionLine(line), line);
    }
    assert.equal(
      flagify("ipv4 and ipv6 may not both be false"),
      "--no-ipv4 and --no-ipv6 may not both be given",
    );
  });
});

describe("app resolution", () => {
  test("splitAppSpec", () => {
    const cases: Array<[string, string, string | undefined]> = [
      ["app.ts", "app.ts", undefined],
      ["app.ts:handler", "app.ts", "handler"],
      ["./dir/app.ts:routes.api", "./dir/app.ts", "routes.api"],
      ["jsr:@scope/pkg", "jsr:@scope/pkg", undefined],
      ["jsr:@scope/pkg:handler", "jsr:@scope/pkg", "handler"],
      ["https://example.com/app.ts", "https://example.com/app.ts", undefined],
      ["https://example.com:8443/app.ts:fetch", "https://example.com:8443/app.ts", "fetch"],
      ["C:\\apps\\app.ts", "C:\\apps\\app.ts", undefined],
      ["/srv/app.ts:$h", "/srv/app.ts", "$h"],
    ];
    for (const [spec, module, name] of cases) {
      assert.deepEqual(splitAppSpec(spec), { module, name }, spec);
    }
  });

  test("paths resolve against the directory; URLs pass through", () => {
    assert.match(
      moduleSpecifier("fixtures/cli_app.ts", here),
      /^file:\/\/.*\/tests\/fixtures\/cli_app\.ts$/,
    );
    assert.equal(moduleSpecifier("jsr:@x/y", here), "jsr:@x/y");
    assert.throws(
      () => moduleSpecifier("fixtures/missing.ts", here),
      /^CliError: module not found: fixtures\/missing\.ts \(looked for .*missing\.ts\)/,
    );
    assert.throws(() => moduleSpecifier("fixtures", here), /module not found/);
  });

  const load = (spec: string, call = false) => loadApp(spec, { call, cwd: here });
  const body = async (app: unknown) => {
    const handler = typeof app === "function"
      ? app
      : (app as { fetch: (...args: unknown[]) => unknown }).fetch;
    const response = await handler(new Request("http://x/"), {
      remoteAddr: { transport: "tcp", hostname: "1.2.3.4" },
      scheme: "http",
    }) as Response;
    return JSON.parse(await response.text()).which;
  };

  test("the default export, a named one, a { fetch } object, a dotted path", async () => {
    assert.equal(await body(await load("fixtures/cli_app.ts")), "default");
    assert.equal(await body(await load("fixtures/cli_app.ts:handler")), "handler");
    assert.equal(await body(await load("fixtures/cli_app.ts:object")), "object");
    assert.equal(await body(await load("fixtures/cli_app.ts:routes.api")), "routes.api");
    const staticApp = await load("fixtures/cli_app.ts:StaticApp");
    assert.equal(await body({ fetch: (staticApp as { fetch: unknown }).fetch }), "StaticApp");
  });

  test("--call calls a factory, awaiting it", async () => {
    assert.equal(await body(await load("fixtures/cli_app.ts:factory", true)), "factory");
    assert.equal(await body(await load("fixtures/cli_app.ts:asyncFactory", true)), "asyncFactory");
  });

  const errors: Array<[string, boolean, RegExp]> = [
    ["fixtures/nope.ts", false, /module not found: fixtures\/nope\.ts/],
    [
      "fixtures/cli_app.ts:1abc",
      false,
      /invalid export name "1abc" in fixtures\/cli_app\.ts:1abc \(a name is an identifier/,
    ],
    ["fixtures/cli_app.ts:", false, /invalid export name "" in fixtures\/cli_app\.ts:/],
    [
      "fixtures/cli_broken.ts",
      false,
      /cannot load fixtures\/cli_broken\.ts: .*broken module \(at \S*fixtures\/cli_broken\.ts:2:\d+\)$/,
    ],
    [
      "fixtures/cli_app.ts:missing",
      false,
      /fixtures\/cli_app\.ts has no export "missing" \(it exports: .*handler/,
    ],
    ["fixtures/cli_app.ts:routes.nope", false, /has no export "routes\.nope"/],
    [
      "fixtures/cli_no_default.ts",
      false,
      /has no default export \(it exports: only\); name one with fixtures\/cli_no_default\.ts:NAME/,
    ],
    [
      "fixtures/cli_app.ts:notAnApp",
      false,
      /the export "notAnApp" of fixtures\/cli_app\.ts is a number, not a fetch handler/,
    ],
    [
      "fixtures/cli_app.ts:plainObject",
      false,
      /is an object without a fetch method, not a fetch handler/,
    ],
    [
      "fixtures/cli_app.ts:PlainClass",
      false,
      /is a class without a static fetch method \(export an instance\), not a fetch handler/,
    ],
    [
      "fixtures/cli_app.ts:notAnApp",
      true,
      /--call: the export "notAnApp" .* is not callable \(it is a number\)/,
    ],
    [
      "fixtures/cli_app.ts:object",
      true,
      /--call: the export "object" .* is not callable \(it is an app object already: leave out --call\)/,
    ],
    [
      "fixtures/cli_app.ts:handler",
      true,
      /--call: the export "handler" .* threw: .*\(it takes arguments: a handler\? leave out --call\)/,
    ],
    [
      "fixtures/cli_app.ts:constant",
      true,
      /--call: the export "constant" .* returned .*\(a Response: a handler\? leave out --call\)/,
    ],
    [
      "fixtures/cli_app.ts:badFactory",
      true,
      /--call: the export "badFactory" .* returned a number, not a fetch handler/,
    ],
    [
      "fixtures/cli_app.ts:throwingFactory",
      true,
      /--call: the export "throwingFactory" .* threw: factory failed/,
    ],
  ];
  test("a module that fails to load: the message and where, on one line", async () => {
    // Written at run time: a fixture that does not parse would fail the formatter.
    const dir = mkdtempSync(join(tmpdir(), "waitress-cli-"));
    const files: Array<[string, string, RegExp]> = [
      // Two syntax errors (Bun lists them), one (Bun gives its position alone).
      [
        "two.ts",
        'export default {\n  fetch() { return new Response("x") {\n}\n',
        /^cannot load two\.ts: .*Expected .*\(at \S*two\.ts:2:\d+\)$/,
      ],
      ["one.ts", "const a = ;\n", /^cannot load one\.ts: .*\(at \S*one\.ts:1:11\)$/],
      // A throw in a named function: where it is thrown, not where it is called.
      [
        "named.ts",
        'function setup() {\n  throw new Error("no config");\n}\nsetup();\n',
        /^cannot load named\.ts: no config \(at \S*named\.ts:2:\d+\)$/,
      ],
      // What older runtimes throw, thrown here by hand: Bun before 1.4 a
      // syntax error that is not an Error, Deno before 2.8 its place inline.
      [
        "old_bun.ts",
        'throw { message: "Unexpected }", position: { file: "/app/x.ts", line: 3, column: 1 } };\n',
        /^cannot load old_bun\.ts: Unexpected \} \(at \/app\/x\.ts:3:1\)$/,
      ],
      [
        "old_deno.ts",
        "throw new SyntaxError(\"Expected ';' at file:///app/x.ts:1:7\\n\\n  let x y\");\n",
        /^cannot load old_deno\.ts: Expected ';' \(at file:\/\/\/app\/x\.ts:1:7\)$/,
      ],
    ];
    try {
      for (const [name, text, pattern] of files) {
        writeFileSync(join(dir, name), text);
        await assert.rejects(loadApp(name, { call: false, cwd: dir }), (error: unknown) => {
          assert.ok(error instanceof CliError, String(error));
          assert.match(error.message, pattern);
          assert.ok(!error.message.includes("\n"), "one line");
          return true;
        });
      }
      // A file named like a URL's scheme does not make the URL an export name.
      writeFileSync(join(dir, "jsr"), "");
      assert.equal(moduleSpecifier("jsr:@x/y", dir), "jsr:@x/y");
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  for (const [spec, call, pattern] of errors) {
    test(`error: ${call ? "--call " : ""}${spec}`, async () => {
      await assert.rejects(load(spec, call), (error: unknown) => {
        assert.ok(error instanceof CliError, String(error));
        assert.match(error.message, pattern);
        assert.ok(!error.message.includes("\n"), "one line");
        return true;
      });
    });
  }
});
