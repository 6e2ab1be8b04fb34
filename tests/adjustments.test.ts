import { describe, test } from "node:test";
import assert from "node:assert/strict";
import {
  closest,
  DEFAULTS,
  type Logger,
  type Options,
  optionsFromStrings,
  parseBoolean,
  parseSize,
  resolveOptions,
} from "../src/adjustments.ts";
import { warnOnce } from "../src/logger.ts";
import { isAuthority, isIPv4Address, isIPv6Address } from "../src/parser.ts";

/** A logger that records what it is given. */
function recorder(): Logger & { lines: string[] } {
  const lines: string[] = [];
  const push = (level: string) => (...args: unknown[]) => {
    lines.push(`${level}: ${args.map(String).join(" ")}`);
  };
  return { lines, info: push("info"), warn: push("warn"), error: push("error") };
}

/** resolveOptions with a silent recording logger. */
function resolve(options: Options) {
  const logger = recorder();
  return { adj: resolveOptions({ logger, ...options }), logger };
}

describe("defaults", () => {
  test("waitress's defaults", () => {
    const { adj } = resolve({});
    assert.deepEqual(adj.listen, [
      { transport: "tcp", hostname: "0.0.0.0", port: 8080, reusePort: false, backlog: 1024 },
    ]);
    assert.equal(adj.urlScheme, "http");
    assert.equal(adj.urlPrefix, "");
    assert.equal(adj.ident, "waitress");
    assert.equal(adj.serverName, "waitress.invalid");
    assert.equal(adj.maxConcurrency, Infinity);
    assert.equal(adj.connectionLimit, 100);
    assert.equal(adj.cleanupInterval, 30);
    assert.equal(adj.channelTimeout, 120);
    assert.equal(adj.logSocketErrors, true);
    assert.equal(adj.maxRequestHeaderSize, 262144);
    assert.equal(adj.maxRequestBodySize, 1073741824);
    assert.equal(adj.exposeTracebacks, false);
    assert.equal(adj.recvBytes, 8192);
    assert.equal(adj.outbufHighWatermark, 16777216);
    assert.equal(adj.channelRequestLookahead, 0);
    assert.equal(adj.trustedProxy, undefined);
    assert.equal(adj.trustedProxyCount, 1);
    assert.deepEqual(adj.trustedProxyHeaders, new Set());
    assert.equal(adj.clearUntrustedProxyHeaders, true);
    assert.equal(adj.logUntrustedProxyHeaders, false);
    assert.equal(adj.signal, undefined);
    assert.equal(adj.onListen, undefined);
    assert.equal(adj.onError, undefined);
    assert.equal(DEFAULTS.unixSocketPerms, 0o600);
    assert.equal(DEFAULTS.backlog, 1024);
  });

  test("no options at all uses the console logger", () => {
    const adj = resolveOptions();
    assert.equal(typeof adj.logger.info, "function");
    assert.equal(adj.listen.length, 1);
  });

  test("an option set to undefined counts as not given", () => {
    const { adj } = resolve({ port: undefined, host: undefined, listen: undefined });
    assert.equal(adj.listen.length, 1);
  });

  test("every value passes through", () => {
    const signal = new AbortController().signal;
    const onListen = () => {};
    const onError = () => new Response("x");
    const { adj } = resolve({
      urlScheme: "https",
      urlPrefix: "/app",
      ident: "",
      serverName: "example.com",
      maxConcurrency: 8,
      connectionLimit: 5,
      cleanupInterval: 0.5,
      channelTimeout: 1.5,
      logSocketErrors: false,
      maxRequestHeaderSize: 1000,
      maxRequestBodySize: 0,
      exposeTracebacks: true,
      recvBytes: 100,
      outbufHighWatermark: 200,
      channelRequestLookahead: 3,
      signal,
      onListen,
      onError,
    });
    assert.equal(adj.urlScheme, "https");
    assert.equal(adj.urlPrefix, "/app");
    assert.equal(adj.ident, "");
    assert.equal(adj.serverName, "example.com");
    assert.equal(adj.maxConcurrency, 8);
    assert.equal(adj.connectionLimit, 5);
    assert.equal(adj.cleanupInterval, 0.5);
    assert.equal(adj.channelTimeout, 1.5);
    assert.equal(adj.logSocketErrors, false);
    assert.equal(adj.maxRequestHeaderSize, 1000);
    assert.equal(adj.maxRequestBodySize, 0);
    assert.equal(adj.exposeTracebacks, true);
    assert.equal(adj.recvBytes, 100);
    assert.equal(adj.outbufHighWatermark, 200);
    assert.equal(adj.channelRequestLookahead, 3);
    assert.equal(adj.signal, signal);
    assert.equal(adj.onListen, onListen);
    assert.equal(adj.onError, onError);
  });
});

describe("listen", () => {
  const tcp = (hostname: string, port: number, extra: object = {}) => ({
    transport: "tcp",
    hostname,
    port,
    reusePort: false,
    backlog: 1024,
    ...extra,
  });
  const cases: Array<[string, Options, unknown[]]> = [
    ["host and port", { host: "127.0.0.1", port: 0 }, [tcp("127.0.0.1", 0)]],
    ["port only", { port: 9000 }, [tcp("0.0.0.0", 9000)]],
    ["host only", { host: "::1" }, [tcp("::1", 8080)]],
    ["bracketed host", { host: "[::1]", port: 1 }, [tcp("::1", 1)]],
    ["host * is one dual-stack socket", { host: "*", port: 5 }, [tcp("::", 5)]],
    ["* without ipv6", { host: "*", port: 5, ipv6: false }, [tcp("0.0.0.0", 5)]],
    ["host localhost", { host: "localhost", port: 5 }, [tcp("127.0.0.1", 5), tcp("::1", 5)]],
    ["localhost without ipv6", { host: "localhost", port: 5, ipv6: false }, [
      tcp("127.0.0.1", 5),
    ]],
    ["* without ipv4 refuses IPv4 peers", { host: "*", port: 5, ipv4: false }, [
      tcp("::", 5, { ipv6Only: true }),
    ]],
    ["listen [::] without ipv4", { listen: "[::]:5", ipv4: false }, [
      tcp("::", 5, { ipv6Only: true }),
    ]],
    ["a DNS name is left to the runtime", { host: "my-host.example", port: 5 }, [
      tcp("my-host.example", 5),
    ]],
    ["listen HOST:PORT", { listen: "127.0.0.1:8000" }, [tcp("127.0.0.1", 8000)]],
    ["listen [v6]:PORT", { listen: "[::1]:8000" }, [tcp("::1", 8000)]],
    ["listen [v6]", { listen: "[::1]" }, [tcp("::1", 8080)]],
    ["listen HOST", { listen: "127.0.0.1" }, [tcp("127.0.0.1", 8080)]],
    ["listen *:PORT", { listen: "*:81" }, [tcp("::", 81)]],
    ["listen several, spaces and commas", { listen: "127.0.0.1:1 [::1]:2,\n127.0.0.1:3" }, [
      tcp("127.0.0.1", 1),
      tcp("::1", 2),
      tcp("127.0.0.1", 3),
    ]],
    ["listen array", { listen: ["127.0.0.1:1", "127.0.0.1:2"] }, [
      tcp("127.0.0.1", 1),
      tcp("127.0.0.1", 2),
    ]],
    ["duplicates dropped", { listen: "127.0.0.1:1 127.0.0.1:1 localhost:1" }, [
      tcp("127.0.0.1", 1),
      tcp("::1", 1),
    ]],
    ["port 0 is never a duplicate", { listen: "127.0.0.1:0 127.0.0.1:0" }, [
      tcp("127.0.0.1", 0),
      tcp("127.0.0.1", 0),
    ]],
    ["listen unix", { listen: "unix:/tmp/a.sock 127.0.0.1:1" }, [
      { transport: "unix", path: "/tmp/a.sock", perms: 0o600, backlog: 1024 },
      tcp("127.0.0.1", 1),
    ]],
    ["a unix path given twice is one socket", { listen: "unix:/tmp/a.sock unix:/tmp/a.sock" }, [
      { transport: "unix", path: "/tmp/a.sock", perms: 0o600, backlog: 1024 },
    ]],
    ["unixSocket with perms", { unixSocket: "/tmp/b.sock", unixSocketPerms: "660" }, [
      { transport: "unix", path: "/tmp/b.sock", perms: 0o660, backlog: 1024 },
    ]],
    ["unixSocket numeric perms", { unixSocket: "/tmp/b.sock", unixSocketPerms: 0o644 }, [
      { transport: "unix", path: "/tmp/b.sock", perms: 0o644, backlog: 1024 },
    ]],
    ["backlog and reusePort", { port: 1, backlog: 10, reusePort: true }, [
      tcp("0.0.0.0", 1, { backlog: 10, reusePort: true }),
    ]],
    ["upper-case v6 is lower-cased", { listen: "[::FFFF:127.0.0.1]:1" }, [
      tcp("::ffff:127.0.0.1", 1),
    ]],
  ];
  for (const [name, options, expected] of cases) {
    test(name, () => {
      assert.deepEqual(resolve(options).adj.listen, expected);
    });
  }

  const errors: Array<[string, Options, RegExp]> = [
    ["host with listen", { host: "1.2.3.4", listen: "1.2.3.4:1" }, /host or port may not be set/],
    ["port with listen", { port: 1, listen: "1.2.3.4:1" }, /host or port may not be set/],
    ["unixSocket with port", { unixSocket: "/x", port: 1 }, /unixSocket may not be set if host/],
    ["unixSocket with listen", { unixSocket: "/x", listen: "1.2.3.4:1" }, /unixSocket.*listen/],
    [
      "bad port type",
      { port: "abc" as unknown as number },
      /port must be an integer from 0 to 65535, got "abc"$/,
    ],
    ["port out of range", { port: 70000 }, /port must be an integer from 0 to 65535, got 70000/],
    ["fractional port", { port: 1.5 }, /port .* got 1\.5/],
    [
      "listen bad port",
      { listen: "127.0.0.1:http" },
      /listen must be a port .*"127\.0\.0\.1:http"/,
    ],
    ["listen port too big", { listen: "127.0.0.1:65536" }, /listen .*65536/],
    ["listen unbracketed v6", { listen: "::1:8080" }, /brackets.*"::1:8080"/],
    ["listen bad bracket", { listen: "[::1:8080" }, /closing/],
    ["listen junk after bracket", { listen: "[::1]x" }, /listen/],
    ["listen not v6 in brackets", { listen: "[1.2.3.4]:1" }, /IPv6 address inside/],
    ["listen v4 tail before ::", { listen: "[1.2.3.4::]:1" }, /IPv6 address inside/],
    ["listen bad host", { listen: "bad_host!:1" }, /listen must be an IP address.*"bad_host!"/],
    [
      "host name longer than 253",
      { host: "a.".repeat(127) + "ab" },
      /host must be an IP address, a host name, "localhost" or "\*", got "(a\.){127}ab"$/,
    ],
    ["listen empty", { listen: " " }, /listen must be at least one address/],
    [
      "listen wrong type",
      { listen: 5 as unknown as string },
      /listen must be a string or an array/,
    ],
    ["v4 with ipv4 false", { host: "127.0.0.1", ipv4: false }, /IPv4 address but ipv4 is false/],
    [
      "the default host with ipv4 false",
      { ipv4: false },
      /host defaults to "0\.0\.0\.0", an IPv4 address, but ipv4 is false: give host "::" or "\*"/,
    ],
    ["v6 with ipv6 false", { listen: "[::1]:1", ipv6: false }, /IPv6 address but ipv6 is false/],
    ["both families off", { ipv4: false, ipv6: false }, /ipv4 and ipv6 may not both be false/],
    ["empty unix path", { listen: "unix:" }, /unix:/],
    ["empty unixSocket", { unixSocket: "" }, /unixSocket/],
    ["perms not octal", { unixSocket: "/x", unixSocketPerms: "689" }, /unixSocketPerms.*"689"/],
    ["perms too big", { unixSocket: "/x", unixSocketPerms: 0o1777 }, /unixSocketPerms/],
    [
      "perms neither a number nor a string",
      { unixSocket: "/x", unixSocketPerms: true as unknown as number },
      /unixSocketPerms must be .*, got true$/,
    ],
    ["backlog negative", { backlog: -1 }, /backlog must be an integer from 0/],
    [
      "reusePort not boolean",
      { reusePort: "yes" as unknown as boolean },
      /reusePort must be true or false, got "yes"/,
    ],
  ];
  for (const [name, options, pattern] of errors) {
    test(`error: ${name}`, () => {
      assert.throws(() => resolve(options), pattern);
    });
  }
});

describe("validation", () => {
  const errors: Array<[string, Options, RegExp, ErrorConstructor]> = [
    [
      "unknown option",
      { prot: 1 } as Options,
      /Unknown option "prot" \(did you mean "port"\?\)/,
      TypeError,
    ],
    [
      "unknown, no suggestion",
      { zzzzzzzz: 1 } as Options,
      /^Unknown option "zzzzzzzz"$/,
      TypeError,
    ],
    [
      "snake_case suggestion",
      { max_request_body_size: 1 } as Options,
      /did you mean "maxRequestBodySize"/,
      TypeError,
    ],
    [
      "negative size",
      { maxRequestBodySize: -1 },
      /maxRequestBodySize must be an integer >= 0, got -1/,
      RangeError,
    ],
    [
      "no header lines",
      { maxRequestHeaders: 0 },
      /maxRequestHeaders must be an integer >= 1, got 0/,
      RangeError,
    ],
    [
      "size as string",
      { recvBytes: "8192" as unknown as number },
      /recvBytes must be an integer from 1 to 16777216, got "8192"/,
      TypeError,
    ],
    [
      // Deno allocates a read buffer this size for every connection.
      "read size of a TiB",
      { recvBytes: 2 ** 40 },
      /recvBytes must be an integer from 1 to 16777216, got 1099511627776/,
      RangeError,
    ],
    ["zero header size", { maxRequestHeaderSize: 0 }, /maxRequestHeaderSize/, RangeError],
    [
      "NaN timeout",
      { channelTimeout: NaN },
      /channelTimeout must be a number of seconds > 0, got NaN/,
      RangeError,
    ],
    ["zero cleanup", { cleanupInterval: 0 }, /cleanupInterval/, RangeError],
    [
      "bool as string",
      { exposeTracebacks: "true" as unknown as boolean },
      /exposeTracebacks must be true or false, got "true"/,
      TypeError,
    ],
    [
      "bad scheme",
      { urlScheme: "ftp" as "http" },
      /urlScheme must be "http" or "https", got "ftp"/,
      RangeError,
    ],
    ["scheme wrong case", { urlScheme: "HTTP" as "http" }, /urlScheme/, RangeError],
    [
      "ident with CRLF",
      { ident: "x\r\nSet-Cookie: a" },
      /ident must be a string without control characters/,
      RangeError,
    ],
    [
      "ident not a string",
      { ident: 5 as unknown as string },
      /ident must be a string, got 5/,
      TypeError,
    ],
    [
      "ident not ASCII",
      { ident: "\u2603" },
      /ident must be printable ASCII \(it is sent in the Server header\), got "\u2603"/,
      RangeError,
    ],
    [
      "serverName empty",
      { serverName: "" },
      /serverName must be a host name or address, optionally with :port, got ""/,
      RangeError,
    ],
    ["serverName with a space", { serverName: "a b" }, /serverName must be a host/, RangeError],
    ["serverName with a path", { serverName: "a/b" }, /serverName must be a host/, RangeError],
    ["serverName with userinfo", { serverName: "u@a" }, /serverName must be a host/, RangeError],
    ["serverName with a bad port", { serverName: "a:8x" }, /serverName must be a host/, RangeError],
    [
      "serverName not ASCII",
      { serverName: "b\u00fccher.example" },
      /serverName must be a host/,
      RangeError,
    ],
    ["urlPrefix with ?", { urlPrefix: "/a?b" }, /urlPrefix/, RangeError],
    [
      "maxConcurrency zero",
      { maxConcurrency: 0 },
      /maxConcurrency must be an integer >= 1 or Infinity, got 0/,
      RangeError,
    ],
    ["connectionLimit zero", { connectionLimit: 0 }, /connectionLimit/, RangeError],
    ["lookahead negative", { channelRequestLookahead: -1 }, /channelRequestLookahead/, RangeError],
    [
      "signal not a signal",
      { signal: {} as AbortSignal },
      /signal must be an AbortSignal/,
      TypeError,
    ],
    [
      "onListen not a function",
      { onListen: 1 as unknown as () => void },
      /onListen must be a function, got 1/,
      TypeError,
    ],
    [
      "onError not a function",
      { onError: "x" as unknown as () => Response },
      /onError must be a function/,
      TypeError,
    ],
    [
      "logger incomplete",
      { logger: { info() {} } as unknown as Logger },
      /logger must be an object with info, warn and error/,
      TypeError,
    ],
    ["threads zero", { threads: 0 }, /threads must be an integer >= 1, got 0/, RangeError],
    [
      "urlScheme not a string",
      { urlScheme: 1 as unknown as "http" },
      /^urlScheme must be "http" or "https", got 1$/,
      TypeError,
    ],
    [
      "maxConcurrency a string",
      { maxConcurrency: "4" as unknown as number },
      /^maxConcurrency must be an integer >= 1 or Infinity, got "4"$/,
      TypeError,
    ],
    // A bad value is shown as JSON where it can be, else by its kind.
    [
      "port an array",
      { port: [80] as unknown as number },
      /^port must be an integer from 0 to 65535, got \[80\]$/,
      TypeError,
    ],
    [
      "port an array JSON cannot show",
      { port: [1n] as unknown as number },
      /^port must be an integer from 0 to 65535, got an array$/,
      TypeError,
    ],
    [
      "port an object",
      { port: { n: 80 } as unknown as number },
      /^port must be an integer from 0 to 65535, got \{"n":80\}$/,
      TypeError,
    ],
    [
      "port an object JSON cannot show",
      { port: { n: 1n } as unknown as number },
      /^port must be an integer from 0 to 65535, got an object$/,
      TypeError,
    ],
    [
      "port a bigint",
      { port: 80n as unknown as number },
      /^port must be an integer from 0 to 65535, got 80n$/,
      TypeError,
    ],
    [
      "port a function",
      { port: (() => 80) as unknown as number },
      /^port must be an integer from 0 to 65535, got a function$/,
      TypeError,
    ],
    [
      "channelTimeout a string",
      { channelTimeout: "5" as unknown as number },
      /^channelTimeout must be a number of seconds > 0, got "5"$/,
      TypeError,
    ],
    [
      "trustedProxyHeaders array with a non-string",
      { trustedProxyHeaders: ["x-forwarded-for", 1 as unknown as string] },
      /^trustedProxyHeaders must be a string or an array of strings, got \["x-forwarded-for",1\]$/,
      TypeError,
    ],
    [
      "asyncoreUsePoll string",
      { asyncoreUsePoll: "x" as unknown as boolean },
      /asyncoreUsePoll/,
      TypeError,
    ],
  ];
  for (const [name, options, pattern, type] of errors) {
    test(`error: ${name}`, () => {
      const run = () =>
        options.logger
          ? resolveOptions(options)
          : resolveOptions({ logger: recorder(), ...options });
      assert.throws(run, (error: unknown) => {
        assert.ok(error instanceof type, `expected ${type.name}, got ${error}`);
        assert.match((error as Error).message, pattern);
        return true;
      });
    });
  }

  test("options that are not an object", () => {
    assert.throws(
      () => resolveOptions(5 as unknown as Options),
      /options must be an object, got 5/,
    );
    assert.throws(() => resolveOptions(null as unknown as Options), /options must be an object/);
  });

  test("serverName takes a host name or address, with a port or not", () => {
    for (const name of ["example.com", "example.com:8080", "10.0.0.1", "[::1]:80", "a-b.c_d"]) {
      assert.equal(resolve({ serverName: name }).adj.serverName, name);
    }
  });

  test("urlPrefix is normalised like waitress's slash_fixed_str", () => {
    const cases: Array<[string, string]> = [
      ["", ""],
      ["  ", ""],
      ["/", ""],
      ["foo", "/foo"],
      ["///foo/", "/foo"],
      [" /a/b/ ", "/a/b"],
    ];
    for (const [input, expected] of cases) {
      assert.equal(resolve({ urlPrefix: input }).adj.urlPrefix, expected, input);
    }
  });

  test("maxConcurrency Infinity is accepted", () => {
    assert.equal(resolve({ maxConcurrency: Infinity }).adj.maxConcurrency, Infinity);
  });
});

describe("trusted proxy options", () => {
  test("headers are lower-cased into a set; strings split on spaces and commas", () => {
    const { adj } = resolve({
      trustedProxy: "127.0.0.1",
      trustedProxyHeaders: "X-Forwarded-For, x-forwarded-proto x-forwarded-host",
      trustedProxyCount: 2,
    });
    assert.equal(adj.trustedProxy, "127.0.0.1");
    assert.equal(adj.trustedProxyCount, 2);
    assert.deepEqual(
      adj.trustedProxyHeaders,
      new Set(["x-forwarded-for", "x-forwarded-proto", "x-forwarded-host"]),
    );
  });

  test("array of headers", () => {
    const { adj } = resolve({ trustedProxy: "*", trustedProxyHeaders: ["Forwarded"] });
    assert.deepEqual(adj.trustedProxyHeaders, new Set(["forwarded"]));
  });

  test("trustedProxy without headers trusts X-Forwarded-Proto, with one warning", () => {
    const logger = recorder();
    const adj = resolveOptions({ trustedProxy: "10.0.0.1", logger });
    assert.deepEqual(adj.trustedProxyHeaders, new Set(["x-forwarded-proto"]));
    resolveOptions({ trustedProxy: "10.0.0.1", logger });
    assert.equal(logger.lines.length, 1);
    assert.match(logger.lines[0], /^warn: .*X-Forwarded-Proto/);
  });

  test("an empty trustedProxy means none", () => {
    assert.equal(resolve({ trustedProxy: "" }).adj.trustedProxy, undefined);
  });

  test("trustedProxy takes IPv4 and IPv6 addresses (a zone too), localhost and *", () => {
    for (const value of ["10.0.0.1", "::1", "fe80::1%eth0", "2001:db8::a", "localhost", "*"]) {
      assert.equal(resolve({ trustedProxy: value }).adj.trustedProxy, value);
    }
  });

  test("an IPv6 trustedProxy is kept in the form the runtimes report peers in (RFC 5952)", () => {
    const cases: Array<[string, string]> = [
      ["0:0:0:0:0:0:0:1", "::1"],
      ["[0:0:0:0:0:0:0:1]", "::1"],
      ["::0001", "::1"],
      ["2001:DB8:0:0:0:0:0:A", "2001:db8::a"],
      ["2001:db8:0:0:1:0:0:1", "2001:db8::1:0:0:1"],
      ["2001:0:0:1:0:0:0:1", "2001:0:0:1::1"],
      ["2001:db8:0:1:1:1:1:1", "2001:db8:0:1:1:1:1:1"],
      ["0:0:0:0:0:ffff:a00:1", "::ffff:10.0.0.1"],
      ["::FFFF:10.0.0.1", "::ffff:10.0.0.1"],
      ["fe80:0::1%eth0", "fe80::1%eth0"],
      ["1:2:3:4:5:6:7:0", "1:2:3:4:5:6:7:0"],
      ["0:0:1::", "0:0:1::"],
      ["::", "::"],
    ];
    for (const [given, kept] of cases) {
      assert.equal(resolve({ trustedProxy: given }).adj.trustedProxy, kept, given);
    }
  });

  test("a bracketed IPv6 trustedProxy is unbracketed", () => {
    const { adj } = resolve({ trustedProxy: "[::1]", trustedProxyHeaders: "x-forwarded-for" });
    assert.equal(adj.trustedProxy, "::1");
  });

  const errors: Array<[string, Options, RegExp]> = [
    [
      "headers without proxy",
      { trustedProxyHeaders: "x-forwarded-for" },
      /trustedProxyHeaders has no meaning without setting trustedProxy, got "x-forwarded-for"/,
    ],
    [
      "count without proxy",
      { trustedProxyCount: 2 },
      /trustedProxyCount has no meaning without setting trustedProxy, got 2/,
    ],
    [
      "count zero",
      { trustedProxy: "*", trustedProxyCount: 0 },
      /trustedProxyCount must be an integer >= 1, got 0/,
    ],
    ["forwarded and x-forwarded", {
      trustedProxy: "*",
      trustedProxyHeaders: "forwarded x-forwarded-for",
    }, /mutually exclusive/],
    [
      "unknown header",
      { trustedProxy: "*", trustedProxyHeaders: "x-real-ip" },
      /trustedProxyHeaders must name only .*got "x-real-ip"/,
    ],
    [
      "proxy list",
      { trustedProxy: "10.0.0.1, 10.0.0.2" },
      /trustedProxy must be one address \(or "\*"\), not a list, got "10\.0\.0\.1, 10\.0\.0\.2"/,
    ],
    [
      "proxy not a string",
      { trustedProxy: 1 as unknown as string },
      /trustedProxy must be a string, got 1/,
    ],
    ...([
      ["nginx", "host names are not resolved"],
      ["proxy.internal", "host names are not resolved"],
      ["10.0.0.0/8", "address ranges are not supported"],
      ["127.0.0.1:8080", "without a port"],
      ["[::1]:8080", "without a port"],
      ["garbage!", ""],
      ["not an ip", ""],
      ["10.0.0.256", "host names are not resolved"],
    ] as const).map(([value, why]): [string, Options, RegExp] => [
      `proxy ${value}, which no peer address would ever match`,
      { trustedProxy: value },
      new RegExp(
        `trustedProxy must be an IP address as the socket reports it, "localhost" \\(unix-socket peers\\) or "\\*"${
          why ? ` \\(${why}\\)` : ""
        }, got "${value.replace(/[.*[\]]/g, "\\$&")}"`,
      ),
    ]),
  ];
  for (const [name, options, pattern] of errors) {
    test(`error: ${name}`, () => assert.throws(() => resolve(options), pattern));
  }
});

describe("ignored waitress options", () => {
  test("accepted, validated, one warning each per logger", () => {
    const logger = recorder();
    const options: Options = {
      logger,
      threads: 4,
      sendBytes: 1,
      asyncoreLoopTimeout: 1,
      asyncoreUsePoll: true,
      inbufOverflow: 524288,
      outbufOverflow: 1048576,
    };
    resolveOptions(options);
    resolveOptions(options);
    assert.equal(logger.lines.length, 6);
    assert.match(logger.lines[0], /^warn: threads is ignored.*maxConcurrency.*--threads/);
    assert.ok(logger.lines.slice(1).every((line) => /^warn: \w+ is a waitress tuning/.test(line)));
  });

  test("warnOnce is per logger and per key", () => {
    const a = recorder();
    const b = recorder();
    assert.equal(warnOnce(a, "k", "one"), true);
    assert.equal(warnOnce(a, "k", "two"), false);
    assert.equal(warnOnce(a, "j", "three"), true);
    assert.equal(warnOnce(b, "k", "four"), true);
    assert.deepEqual(a.lines, ["warn: one", "warn: three"]);
    assert.deepEqual(b.lines, ["warn: four"]);
  });
});

describe("optionsFromStrings", () => {
  test("every kind of value", () => {
    const options = optionsFromStrings({
      host: "127.0.0.1",
      port: "8000",
      unixSocketPerms: "0o660",
      ipv6: "no",
      ipv4: true,
      maxRequestBodySize: "1m",
      maxRequestHeaderSize: "64KiB",
      recvBytes: "8192",
      outbufHighWatermark: "2 GB",
      channelTimeout: "0.5",
      cleanupInterval: "30",
      maxConcurrency: "unlimited",
      connectionLimit: "50",
      trustedProxyHeaders: "x-forwarded-for,x-forwarded-proto",
      listen: ["127.0.0.1:1 127.0.0.1:2", "[::1]:3"],
      exposeTracebacks: "ON",
      logSocketErrors: "0",
      urlPrefix: "app",
      ident: "",
    });
    assert.deepEqual(options, {
      host: "127.0.0.1",
      port: 8000,
      unixSocketPerms: 0o660,
      ipv6: false,
      ipv4: true,
      maxRequestBodySize: 1048576,
      maxRequestHeaderSize: 65536,
      recvBytes: 8192,
      outbufHighWatermark: 2 * 1024 ** 3,
      channelTimeout: 0.5,
      cleanupInterval: 30,
      maxConcurrency: Infinity,
      connectionLimit: 50,
      trustedProxyHeaders: ["x-forwarded-for", "x-forwarded-proto"],
      listen: ["127.0.0.1:1", "127.0.0.1:2", "[::1]:3"],
      exposeTracebacks: true,
      logSocketErrors: false,
      urlPrefix: "app",
      ident: "",
    });
  });

  test("the last of repeated scalar values wins", () => {
    assert.deepEqual(optionsFromStrings({ port: ["1", "2"] }), { port: 2 });
    // No occurrence at all (an empty array) sets nothing.
    assert.deepEqual(optionsFromStrings({ port: [], trustedProxyHeaders: [] }), {});
  });

  test("booleans", () => {
    for (const word of ["true", "yes", "1", "on", "TRUE", " Yes "]) {
      assert.equal(parseBoolean(word), true, word);
    }
    for (const word of ["false", "no", "0", "off", "Off"]) {
      assert.equal(parseBoolean(word), false, word);
    }
    assert.equal(parseBoolean("maybe"), undefined);
  });

  test("sizes", () => {
    assert.equal(parseSize("0"), 0);
    assert.equal(parseSize("10k"), 10240);
    assert.equal(parseSize("1.5k"), 1536);
    assert.equal(parseSize("1G"), 1073741824);
    assert.equal(parseSize("1.3"), undefined);
    assert.equal(parseSize("-1"), undefined);
    assert.equal(parseSize("1x"), undefined);
    assert.equal(parseSize(""), undefined);
  });

  const errors: Array<[string, Record<string, string | string[] | boolean>, RegExp]> = [
    ["unknown name", { prot: "1" }, /Unknown option "prot" \(did you mean "port"\?\)/],
    ["function option", { logger: "x" }, /logger cannot be given as a string/],
    [
      "an array with a non-string",
      { trustedProxyHeaders: ["x-forwarded-for", 1 as unknown as string] },
      /trustedProxyHeaders must be a string or an array of strings, got \["x-forwarded-for",1\]$/,
    ],
    [
      "a value neither string, array nor boolean",
      { port: 80 as unknown as string },
      /port must be a string, got 80/,
    ],
    ["bad int", { port: "abc" }, /port must be an integer, got "abc"/],
    ["int with a unit", { backlog: "5x" }, /backlog must be an integer, got "5x"/],
    [
      "bad bool",
      { ipv6: "maybe" },
      /ipv6 must be true\/false, yes\/no, on\/off or 1\/0, got "maybe"/,
    ],
    [
      "bad size",
      { maxRequestBodySize: "-1" },
      /maxRequestBodySize must be a size in bytes .*got "-1"/,
    ],
    ["bad unit", { recvBytes: "10q" }, /recvBytes .*"10q"/],
    [
      "bad seconds",
      { channelTimeout: "soon" },
      /channelTimeout must be a number of seconds, got "soon"/,
    ],
    ["bad perms", { unixSocketPerms: "rw" }, /unixSocketPerms must be octal permissions/],
    ["flag without value for a value option", { port: true }, /port must be given a value/],
    [
      "bad limit",
      { maxConcurrency: "lots" },
      /maxConcurrency must be an integer >= 1 or "unlimited"/,
    ],
  ];
  for (const [name, values, pattern] of errors) {
    test(`error: ${name}`, () => assert.throws(() => optionsFromStrings(values), pattern));
  }

  test("a negative integer is refused with the option's own range, as the number is", () => {
    const resolveStrings = (values: Record<string, string>) =>
      resolveOptions({ ...optionsFromStrings(values), logger: recorder() });
    assert.throws(
      () => resolveStrings({ backlog: "-5" }),
      /backlog must be an integer from 0 to 2147483647, got -5/,
    );
    assert.throws(
      () => resolveStrings({ connectionLimit: "-1" }),
      /connectionLimit must be an integer >= 1, got -1/,
    );
    assert.throws(
      () => resolveStrings({ connectionLimit: "0" }),
      /connectionLimit must be an integer >= 1, got 0/,
    );
  });

  test("the result resolves", () => {
    const options = optionsFromStrings({ listen: "127.0.0.1:0", threads: "4" });
    const logger = recorder();
    const adj = resolveOptions({ ...options, logger });
    assert.equal(adj.listen.length, 1);
    assert.equal(logger.lines.length, 1);
  });
});

describe("helpers", () => {
  test("isIPv4Address", () => {
    for (const ok of ["0.0.0.0", "127.0.0.1", "255.255.255.255", "10.0.0.1"]) {
      assert.equal(isIPv4Address(ok), true, ok);
    }
    for (const bad of ["256.0.0.1", "1.2.3", "1.2.3.4.5", "01.2.3.4", "a.b.c.d", "", "1..2.3"]) {
      assert.equal(isIPv4Address(bad), false, bad);
    }
  });

  test("isIPv6Address", () => {
    for (
      const ok of [
        "::",
        "::1",
        "2001:db8::1",
        "2001:DB8:0:0:0:0:0:1",
        "fe80::1%eth0",
        "::ffff:127.0.0.1",
        "1:2:3:4:5:6:7:8",
        "1::",
      ]
    ) {
      assert.equal(isIPv6Address(ok), true, ok);
    }
    for (
      const bad of [
        "",
        ":",
        "1:2:3:4:5:6:7:8:9",
        "1::2::3",
        "12345::",
        "g::1",
        "1:2:3:4:5:6:7",
        "fe80::1%",
        "127.0.0.1",
        "::1.2.3",
      ]
    ) {
      assert.equal(isIPv6Address(bad), false, bad);
    }
  });

  test("isIPv6Address: an IPv4 tail only ends the address, and counts as two groups", () => {
    for (
      const ok of [
        "::1.2.3.4",
        "::ffff:1.2.3.4",
        "1:2:3:4:5:6:1.2.3.4",
        "1::1.2.3.4",
        "1:2:3:4:5::1.2.3.4",
        "1:2:3:4:5:6:7::",
        "::1:2:3:4:5:6:7",
      ]
    ) {
      assert.equal(isIPv6Address(ok), true, ok);
      // The Host grammar is the same one: the two cannot disagree.
      assert.equal(isAuthority(`[${ok}]`), true, ok);
    }
    for (
      const bad of [
        "1.2.3.4::",
        "1.2.3.4::1",
        "::1.2.3.4:1",
        "::1.2.3.4::",
        "1:2:3:4:5:6:7:1.2.3.4",
        "1:2:3:4:5:6::1.2.3.4",
        "1:2:3:4:5:6:7:8::",
        "::1.2.3.04",
        "::256.1.2.3",
        ":1::",
        "1::2:",
      ]
    ) {
      assert.equal(isIPv6Address(bad), false, bad);
      assert.equal(isAuthority(`[${bad}]`), false, bad);
    }
  });

  test("closest", () => {
    assert.equal(closest("prot", ["port", "host"]), "port");
    assert.equal(closest("xyzzy", ["port", "host"]), undefined);
  });

  test("closest: lettersPerTypo sets how many edits pass for a typo", () => {
    // Four edits in 13 letters: a typo at one per three letters, not at one per four.
    assert.equal(closest("maxreqheaders", ["maxRequestHeaders"]), "maxRequestHeaders");
    assert.equal(closest("maxreqheaders", ["maxRequestHeaders"], 4), undefined);
    // Two edits always pass.
    assert.equal(closest("hots", ["host"], 100), "host");
  });
});
