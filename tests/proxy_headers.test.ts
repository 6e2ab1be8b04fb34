import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { type Options, resolveOptions } from "../src/adjustments.ts";
import type { Logger } from "../src/logger.ts";
import { applyProxyHeaders, type ProxyConfig, type ProxyView } from "../src/proxy_headers.ts";
import type { Addr } from "../src/runtime/types.ts";

function recorder(): Logger & { lines: string[] } {
  const lines: string[] = [];
  const push = (level: string) => (...args: unknown[]) => {
    lines.push(`${level}: ${args.map(String).join(" ")}`);
  };
  return { lines, info: push("info"), warn: push("warn"), error: push("error") };
}

/** A ProxyConfig as the server gets it: through resolveOptions. */
function config(options: Options): ProxyConfig {
  return resolveOptions({ logger: recorder(), ...options });
}

const PEER: Addr = { transport: "tcp", hostname: "192.168.1.1", port: 4321 };

function view(headers: Array<[string, string]>, extra: Partial<ProxyView> = {}): ProxyView {
  return { scheme: "http", authority: "localhost:8080", remoteAddr: PEER, headers, ...extra };
}

/** Runs applyProxyHeaders and asserts it did not produce an error. */
function apply(cfg: ProxyConfig, input: ProxyView, logger = recorder()): ProxyView {
  const result = applyProxyHeaders(cfg, input, logger);
  if ("error" in result) throw new Error(`unexpected error: ${result.error}`);
  return result;
}

function header(v: ProxyView, name: string): string | undefined {
  const found = v.headers.filter(([n]) => n.toLowerCase() === name.toLowerCase());
  assert.ok(found.length <= 1, `more than one ${name}`);
  return found[0]?.[1];
}

const XFF_PROTO = { trustedProxy: "*", trustedProxyHeaders: "x-forwarded-for x-forwarded-proto" };
const XFF_PROTO_HOST = {
  trustedProxy: "*",
  trustedProxyHeaders: "x-forwarded-for x-forwarded-proto x-forwarded-host",
  trustedProxyCount: 2,
};

describe("nothing to do", () => {
  test("no proxy header: the same view object comes back", () => {
    const input = view([["Host", "localhost:8080"], ["Accept", "*/*"]]);
    assert.equal(apply(config(XFF_PROTO), input), input);
    assert.equal(apply(config({}), input), input);
  });

  test("untrusted headers kept when clearing is off: same view", () => {
    const input = view([["X-Forwarded-For", "1.2.3.4"], ["Forwarded", "for=1.2.3.4"]]);
    assert.equal(apply(config({ clearUntrustedProxyHeaders: false }), input), input);
  });
});

describe("X-Forwarded-* (waitress's worked examples)", () => {
  test("for + proto, count 1: X-Forwarded-Port is not trusted and removed, Host kept", () => {
    const out = apply(
      config(XFF_PROTO),
      view([
        ["Host", "www.google.com:8080"],
        ["X-Forwarded-For", "192.168.1.1"],
        ["X-Forwarded-Proto", "https"],
        ["X-Forwarded-Port", "5000"],
      ], { authority: "www.google.com:8080", remoteAddr: { ...PEER, hostname: "10.0.0.9" } }),
    );
    assert.deepEqual(out.remoteAddr, { transport: "tcp", hostname: "192.168.1.1" });
    assert.equal(out.scheme, "https");
    assert.equal(out.authority, "www.google.com:8080");
    assert.equal(header(out, "host"), "www.google.com:8080");
    assert.equal(header(out, "x-forwarded-port"), undefined);
    assert.equal(header(out, "x-forwarded-proto"), "https");
  });

  test("count 2: the second-to-last hop is the client; the header keeps the trusted hops", () => {
    const out = apply(
      config(XFF_PROTO_HOST),
      view([
        ["X-Forwarded-For", "192.0.2.1, 198.51.100.2, 203.0.113.1"],
        ["X-Forwarded-Proto", "http"],
        ["X-Forwarded-Host", "example.com:8080"],
      ]),
    );
    assert.deepEqual(out.remoteAddr, { transport: "tcp", hostname: "198.51.100.2" });
    assert.equal(out.authority, "example.com:8080");
    assert.equal(header(out, "host"), "example.com:8080");
    assert.equal(header(out, "x-forwarded-for"), "198.51.100.2, 203.0.113.1");
  });

  test("host without port and proto http: no port in the authority", () => {
    const out = apply(
      config(XFF_PROTO_HOST),
      view([["X-Forwarded-Proto", "http"], ["X-Forwarded-Host", "example.com"]]),
    );
    assert.equal(out.authority, "example.com");
  });

  test("X-Forwarded-Port adds the port to the host", () => {
    const out = apply(
      config({ ...XFF_PROTO_HOST, trustedProxyHeaders: "x-forwarded-host x-forwarded-port" }),
      view([["X-Forwarded-Port", "8080"], ["X-Forwarded-Host", "example.com"]]),
    );
    assert.equal(out.authority, "example.com:8080");
  });

  test("count 2 over two hosts: the older host wins, header kept", () => {
    const out = apply(
      config({
        ...XFF_PROTO_HOST,
        trustedProxyHeaders: "x-forwarded-for x-forwarded-host x-forwarded-port",
      }),
      view([
        ["X-Forwarded-For", "192.0.2.1, 198.51.100.2, 203.0.113.1"],
        ["X-Forwarded-Host", "example.com, example.org"],
        ["X-Forwarded-Port", "8080"],
      ]),
    );
    assert.equal(out.authority, "example.com:8080");
    assert.equal(header(out, "x-forwarded-host"), "example.com, example.org");
  });

  test("count 1 over two hosts: the last hop wins, headers rewritten", () => {
    const out = apply(
      config({
        trustedProxy: "*",
        trustedProxyHeaders: "x-forwarded-for x-forwarded-host x-forwarded-port",
      }),
      view([
        ["X-Forwarded-For", "192.0.2.1, 198.51.100.2, 203.0.113.1"],
        ["X-Forwarded-Host", "example.com, example.org"],
        ["X-Forwarded-Port", "8080"],
      ]),
    );
    assert.equal(out.remoteAddr.hostname, "203.0.113.1");
    assert.equal(out.authority, "example.org:8080");
    assert.equal(header(out, "x-forwarded-for"), "203.0.113.1");
    assert.equal(header(out, "x-forwarded-host"), "example.org");
  });

  const portCases: Array<[string, string, string]> = [
    ["80", "https", "example.com:80"],
    ["443", "http", "example.com:443"],
    ["443", "https", "example.com"],
    ["80", "http", "example.com"],
  ];
  for (const [port, proto, authority] of portCases) {
    test(`port ${port} with proto ${proto} gives ${authority}`, () => {
      const out = apply(
        config({
          trustedProxy: "*",
          trustedProxyHeaders: "x-forwarded-port x-forwarded-host x-forwarded-proto",
        }),
        view([
          ["X-Forwarded-Port", port],
          ["X-Forwarded-Proto", proto],
          ["X-Forwarded-Host", "example.com"],
        ]),
      );
      assert.equal(out.authority, authority);
      assert.equal(out.scheme, proto);
    });
  }

  test("the port in the forwarded host wins over X-Forwarded-Port", () => {
    const out = apply(
      config({ trustedProxy: "*", trustedProxyHeaders: "x-forwarded-port x-forwarded-host" }),
      view([["X-Forwarded-Port", "9000"], ["X-Forwarded-Host", "example.com:8443"]]),
    );
    assert.equal(out.authority, "example.com:8443");
  });

  test("proto is case-insensitive and quoted values are unquoted", () => {
    const out = apply(config(XFF_PROTO), view([["X-Forwarded-Proto", '"HTTPS"']]));
    assert.equal(out.scheme, "https");
  });

  test("a quoted host's quoted-pairs are unescaped (waitress's undquote)", () => {
    const out = apply(
      config(XFF_PROTO_HOST),
      view([["X-Forwarded-Host", '"ex\\ample.com\\:8443"']]),
    );
    assert.equal(out.authority, "example.com:8443");
    assert.equal(header(out, "host"), "example.com:8443");
  });

  test("proto alone keeps the authority (waitress keeps HTTP_HOST)", () => {
    const out = apply(config(XFF_PROTO), view([["X-Forwarded-Proto", "https"]]));
    assert.equal(out.scheme, "https");
    assert.equal(out.authority, "localhost:8080");
  });

  test("a bare IPv6 client address", () => {
    const out = apply(config(XFF_PROTO), view([["X-Forwarded-For", "2001:db8::1"]]));
    assert.deepEqual(out.remoteAddr, { transport: "tcp", hostname: "2001:db8::1" });
  });

  test("a bracketed IPv6 client with a port", () => {
    const out = apply(config(XFF_PROTO), view([["X-Forwarded-For", "[2001:db8::1]:4711"]]));
    assert.deepEqual(out.remoteAddr, { transport: "tcp", hostname: "2001:db8::1", port: 4711 });
  });

  test("an IPv4 client with a port, quoted", () => {
    const out = apply(config(XFF_PROTO), view([["X-Forwarded-For", '"10.1.2.3:55"']]));
    assert.deepEqual(out.remoteAddr, { transport: "tcp", hostname: "10.1.2.3", port: 55 });
  });

  test("an IPv4-mapped IPv6 client is one address", () => {
    const out = apply(config(XFF_PROTO), view([["X-Forwarded-For", "::ffff:10.1.2.3"]]));
    assert.deepEqual(out.remoteAddr, { transport: "tcp", hostname: "::ffff:10.1.2.3" });
  });

  test("several X-Forwarded-For lines count as one list", () => {
    const out = apply(
      config({ ...XFF_PROTO, trustedProxyCount: 2 }),
      view([["X-Forwarded-For", "1.1.1.1"], ["x-forwarded-for", "2.2.2.2, 3.3.3.3"]]),
    );
    assert.equal(out.remoteAddr.hostname, "2.2.2.2");
    assert.equal(header(out, "x-forwarded-for"), "2.2.2.2, 3.3.3.3");
  });

  test("what the client wrote before the trusted entries is not read: its broken quoting is no 400", () => {
    const cfg = config({
      trustedProxy: "*",
      trustedProxyHeaders: "x-forwarded-for x-forwarded-host",
    });
    // nginx's $proxy_add_x_forwarded_for appends its entry to what the client sent.
    const out = apply(
      cfg,
      view([["X-Forwarded-For", '"x, 203.0.113.5'], ["X-Forwarded-Host", 'a"b, public.example']]),
    );
    assert.equal(out.remoteAddr.hostname, "203.0.113.5");
    assert.equal(header(out, "x-forwarded-for"), "203.0.113.5");
    assert.equal(header(out, "host"), "public.example");
    // Within the trusted entries it is still malformed.
    const two = config({ ...XFF_PROTO, trustedProxyCount: 2 });
    assert.deepEqual(
      applyProxyHeaders(two, view([["X-Forwarded-For", '"x, 203.0.113.5']]), recorder()),
      {
        error: 'Header "X-Forwarded-For" malformed.',
      },
    );
  });

  test("a count larger than the chain uses the first hop", () => {
    const out = apply(
      config({ ...XFF_PROTO, trustedProxyCount: 5 }),
      view([["X-Forwarded-For", "1.1.1.1, 2.2.2.2"]]),
    );
    assert.equal(out.remoteAddr.hostname, "1.1.1.1");
  });

  test("a new Host header replaces the old one, or is added", () => {
    const cfg = config({ trustedProxy: "*", trustedProxyHeaders: "x-forwarded-host" });
    const replaced = apply(cfg, view([["host", "a"], ["X-Forwarded-Host", "b.example"]]));
    assert.deepEqual(replaced.headers, [["host", "b.example"], ["X-Forwarded-Host", "b.example"]]);
    const added = apply(cfg, view([["X-Forwarded-Host", "b.example"]]));
    assert.deepEqual(added.headers, [["X-Forwarded-Host", "b.example"], ["Host", "b.example"]]);
  });

  test("input is never modified", () => {
    const headers: Array<[string, string]> = [["X-Forwarded-For", "1.1.1.1, 2.2.2.2"]];
    const input = view(headers);
    apply(config({ ...XFF_PROTO, trustedProxyHeaders: "x-forwarded-for" }), input);
    assert.deepEqual(input.headers, [["X-Forwarded-For", "1.1.1.1, 2.2.2.2"]]);
    assert.equal(input.remoteAddr, PEER);
  });
});

describe("Forwarded (RFC 7239)", () => {
  const FWD = { trustedProxy: "*", trustedProxyHeaders: "forwarded" };

  test("for with port, host with port, proto", () => {
    const out = apply(
      config(FWD),
      view([["Forwarded", "For=198.51.100.2:5858;host=example.com:8080;proto=https"]]),
    );
    assert.deepEqual(out.remoteAddr, { transport: "tcp", hostname: "198.51.100.2", port: 5858 });
    assert.equal(out.authority, "example.com:8080");
    assert.equal(out.scheme, "https");
  });

  test("count 2: the older trusted element wins; header rewritten", () => {
    const out = apply(
      config({ ...FWD, trustedProxyCount: 2 }),
      view([[
        "Forwarded",
        "For=192.0.2.1;host=fake.com, For=198.51.100.2;host=example.com:8080, For=203.0.113.1",
      ]]),
    );
    assert.equal(out.remoteAddr.hostname, "198.51.100.2");
    assert.equal(out.authority, "example.com:8080");
    assert.equal(
      header(out, "forwarded"),
      "For=198.51.100.2;host=example.com:8080, For=203.0.113.1",
    );
  });

  test("quoted IPv6 with port", () => {
    const out = apply(
      config({ ...FWD, trustedProxyCount: 2 }),
      view([[
        "Forwarded",
        'for="[2001:db8::1]:3821";host="example.com:8443";proto="https", ' +
        'for=192.0.2.1;host="example.internal:8080"',
      ]]),
    );
    assert.deepEqual(out.remoteAddr, { transport: "tcp", hostname: "2001:db8::1", port: 3821 });
    assert.equal(out.authority, "example.com:8443");
    assert.equal(out.scheme, "https");
  });

  test("quoted IPv6 without port; the host comes from the newer element", () => {
    const out = apply(
      config({ ...FWD, trustedProxyCount: 2 }),
      view([[
        "Forwarded",
        'for="[2001:db8::1]";proto="https", for=192.0.2.1;host="example.org"',
      ]]),
    );
    assert.deepEqual(out.remoteAddr, { transport: "tcp", hostname: "2001:db8::1" });
    assert.equal(out.authority, "example.org");
    assert.equal(out.scheme, "https");
  });

  test("an IPv6 node neither quoted nor bracketed is an address, not a host and a port", () => {
    const out = apply(config(FWD), view([["Forwarded", "for=2001:db8::1;proto=https"]]));
    assert.deepEqual(out.remoteAddr, { transport: "tcp", hostname: "2001:db8::1" });
  });

  test("an empty pair is skipped, by= is accepted", () => {
    const out = apply(
      config(FWD),
      view([["Forwarded", "For=198.51.100.2;;proto=https;by=_unused"]]),
    );
    assert.equal(out.scheme, "https");
    assert.equal(out.remoteAddr.hostname, "198.51.100.2");
  });

  test("an unknown token is logged and ignored", () => {
    const logger = recorder();
    const out = apply(
      config(FWD),
      view([["Forwarded", 'For=198.51.100.2;proto=https;unknown="yolo"']]),
      logger,
    );
    assert.equal(out.scheme, "https");
    assert.deepEqual(logger.lines, ["warn: Unknown Forwarded token: unknown"]);
  });

  test("many unknown tokens make one log line; a long malformed value is cut in its line", () => {
    const logger = recorder();
    const out = apply(
      config(FWD),
      view([["Forwarded", "for=198.51.100.2;" + "a=b;".repeat(40_000) + "proto=https"]]),
      logger,
    );
    assert.equal(out.scheme, "https");
    assert.deepEqual(logger.lines, ["warn: Unknown Forwarded token: a (and 39999 more)"]);
    const bad = recorder();
    const value = "for=" + "x".repeat(100_000) + ";nope";
    const failed = applyProxyHeaders(config(FWD), view([["Forwarded", value]]), bad);
    assert.ok("error" in failed);
    assert.equal(bad.lines.length, 1);
    assert.ok(bad.lines[0].length < 600, `${bad.lines[0].length} characters`);
    assert.match(bad.lines[0], /… \(100009 characters\)$/);
  });

  test("what the client wrote before the trusted elements is not read: no 400, no log line", () => {
    const logger = recorder();
    // nginx: proxy_set_header Forwarded "$http_forwarded, for=$remote_addr;proto=$scheme"
    for (const client of ['for="6.6.6.6', "spam=1;spam2=2", "for"]) {
      const out = apply(
        config(FWD),
        view([["Forwarded", `${client}, for=203.0.113.5;proto=https`]]),
        logger,
      );
      assert.equal(out.remoteAddr.hostname, "203.0.113.5");
      assert.equal(out.scheme, "https");
      assert.equal(header(out, "forwarded"), "for=203.0.113.5;proto=https");
    }
    assert.deepEqual(logger.lines, []);
  });

  test("X-Forwarded-* are untrusted when Forwarded is: removed and logged once", () => {
    const logger = recorder();
    const out = apply(
      config({ ...FWD, logUntrustedProxyHeaders: true }),
      view([["Forwarded", "for=1.2.3.4"], ["X-Forwarded-For", "5.6.7.8"]]),
      logger,
    );
    assert.equal(out.remoteAddr.hostname, "1.2.3.4");
    assert.equal(header(out, "x-forwarded-for"), undefined);
    assert.deepEqual(logger.lines, [
      "warn: Removed untrusted headers (X-Forwarded-For). Waitress recommends these be removed upstream.",
    ]);
  });

  test("an obfuscated port is left out", () => {
    const out = apply(config(FWD), view([["Forwarded", 'for="_hidden:_port"']]));
    assert.deepEqual(out.remoteAddr, { transport: "tcp", hostname: "_hidden" });
  });

  test("for=unknown passes through (waitress)", () => {
    const out = apply(config(FWD), view([["Forwarded", "for=unknown"]]));
    assert.equal(out.remoteAddr.hostname, "unknown");
  });
});

describe("who is trusted", () => {
  const BY = {
    trustedProxy: "192.168.1.1",
    trustedProxyHeaders: "x-forwarded-by",
  };
  const ALL: Array<[string, string]> = [
    ["X-Forwarded-For", "1.1.1.1"],
    ["X-Forwarded-Host", "h"],
    ["X-Forwarded-Proto", "https"],
    ["X-Forwarded-Port", "1"],
    ["X-Forwarded-By", "me"],
    ["Forwarded", "for=1.1.1.1"],
    ["Accept", "*/*"],
  ];

  test("untrusted peer: all removed", () => {
    const out = apply(
      config(BY),
      view(ALL, { remoteAddr: { ...PEER, hostname: "192.168.1.255" } }),
    );
    assert.deepEqual(out.headers, [["Accept", "*/*"]]);
    assert.equal(out.scheme, "http");
  });

  test("trusted peer: only the trusted header kept", () => {
    const out = apply(config(BY), view(ALL));
    assert.deepEqual(out.headers, [["X-Forwarded-By", "me"], ["Accept", "*/*"]]);
    assert.equal(out.remoteAddr, PEER);
  });

  test("clearing off: all kept verbatim, the same view", () => {
    const input = view(ALL, { remoteAddr: { ...PEER, hostname: "192.168.1.255" } });
    assert.equal(apply(config({ ...BY, clearUntrustedProxyHeaders: false }), input), input);
  });

  test("clearing off while the host is rewritten: the untrusted headers are kept verbatim", () => {
    const out = apply(
      config({
        trustedProxy: "192.168.1.1",
        trustedProxyHeaders: "x-forwarded-host",
        clearUntrustedProxyHeaders: false,
      }),
      view([["Host", "localhost:8080"], ...ALL]),
    );
    assert.equal(out.authority, "h");
    assert.deepEqual(out.headers, [["Host", "h"], ...ALL]);
  });

  test("default configuration strips all six headers", () => {
    const logger = recorder();
    const out = apply(config({}), view(ALL), logger);
    assert.deepEqual(out.headers, [["Accept", "*/*"]]);
    assert.deepEqual(logger.lines, []);
  });

  test("logUntrustedProxyHeaders names every removed header", () => {
    const logger = recorder();
    apply(config({ logUntrustedProxyHeaders: true }), view(ALL), logger);
    assert.deepEqual(logger.lines, [
      "warn: Removed untrusted headers (X-Forwarded-For, X-Forwarded-Host, X-Forwarded-Proto, " +
      "X-Forwarded-Port, X-Forwarded-By, Forwarded). Waitress recommends these be removed upstream.",
    ]);
  });

  test("a trusted peer with no trusted header list applies nothing (waitress's middleware)", () => {
    const cfg: ProxyConfig = {
      trustedProxy: "*",
      trustedProxyCount: 1,
      trustedProxyHeaders: new Set(),
      clearUntrustedProxyHeaders: true,
      logUntrustedProxyHeaders: false,
    };
    const out = apply(cfg, view([["X-Forwarded-For", "1.1.1.1"], ["Forwarded", "for=2.2.2.2"]]));
    assert.equal(out.remoteAddr, PEER);
    assert.deepEqual(out.headers, []);
  });

  test("a unix-socket peer is 'localhost'", () => {
    const unixPeer: Addr = { transport: "unix", path: "" };
    const cfg = config({ trustedProxy: "localhost", trustedProxyHeaders: "x-forwarded-for" });
    const out = apply(cfg, view([["X-Forwarded-For", "10.0.0.7"]], { remoteAddr: unixPeer }));
    assert.deepEqual(out.remoteAddr, { transport: "tcp", hostname: "10.0.0.7" });
    const tcp = apply(cfg, view([["X-Forwarded-For", "10.0.0.7"]]));
    assert.equal(tcp.remoteAddr, PEER);
  });

  test("an IPv6 peer, and an IPv4-mapped peer matching an IPv4 proxy", () => {
    const cfg6 = config({ trustedProxy: "::1", trustedProxyHeaders: "x-forwarded-for" });
    const peer6: Addr = { transport: "tcp", hostname: "::1", port: 5 };
    const out6 = apply(cfg6, view([["X-Forwarded-For", "10.0.0.7"]], { remoteAddr: peer6 }));
    assert.equal(out6.remoteAddr.hostname, "10.0.0.7");
    const cfg4 = config({ trustedProxy: "127.0.0.1", trustedProxyHeaders: "x-forwarded-for" });
    const mapped: Addr = { transport: "tcp", hostname: "::ffff:127.0.0.1", port: 5 };
    const out4 = apply(cfg4, view([["X-Forwarded-For", "10.0.0.7"]], { remoteAddr: mapped }));
    assert.equal(out4.remoteAddr.hostname, "10.0.0.7");
  });

  test("an IPv6 peer matches whichever form the runtime prints it in", () => {
    const cases: Array<[string, string, boolean]> = [
      ["::1.2.3.4", "::102:304", true], // Deno prints IPv4-compatible addresses in hex
      ["::102:304", "::1.2.3.4", true], // glibc in dotted form
      ["2001:db8::a", "2001:DB8:0:0:0:0:0:A", true],
      ["10.0.0.1", "::FFFF:10.0.0.1", true],
      ["2001:db8::a", "2001:db8::b", false],
      ["10.0.0.1", "::ffff:10.0.0.2", false],
    ];
    for (const [trustedProxy, hostname, trusted] of cases) {
      const cfg = config({ trustedProxy, trustedProxyHeaders: "x-forwarded-for" });
      const peer: Addr = { transport: "tcp", hostname, port: 5 };
      const out = apply(cfg, view([["X-Forwarded-For", "10.0.0.7"]], { remoteAddr: peer }));
      assert.equal(out.remoteAddr.hostname, trusted ? "10.0.0.7" : hostname, hostname);
    }
  });
});

describe("malformed trusted values give a 400 naming the header", () => {
  const ALL_X = {
    trustedProxy: "*",
    trustedProxyHeaders: "x-forwarded-for x-forwarded-host x-forwarded-proto x-forwarded-port",
  };
  const FWD = { trustedProxy: "*", trustedProxyHeaders: "forwarded" };
  const cases: Array<[string, Options, [string, string], string]> = [
    [
      "proto with a URL",
      ALL_X,
      ["X-Forwarded-Proto", "http://p02n3e.com?url=http"],
      "X-Forwarded-Proto",
    ],
    ["proto ftp", ALL_X, ["X-Forwarded-Proto", "ftp"], "X-Forwarded-Proto"],
    [
      "proto with spaces inside quotes",
      ALL_X,
      ["X-Forwarded-Proto", '" https "'],
      "X-Forwarded-Proto",
    ],
    ["two protos", ALL_X, ["X-Forwarded-Proto", "https, http"], "X-Forwarded-Proto"],
    ["two ports", ALL_X, ["X-Forwarded-Port", "80, 443"], "X-Forwarded-Port"],
    ["port not a number", ALL_X, ["X-Forwarded-Port", "eighty"], "X-Forwarded-Port"],
    ["port too big", ALL_X, ["X-Forwarded-Port", "65536"], "X-Forwarded-Port"],
    ["XFF broken quoting", ALL_X, ["X-Forwarded-For", '"foo'], "X-Forwarded-For"],
    ["XFF bad escape", ALL_X, ["X-Forwarded-For", '"fo"o"'], "X-Forwarded-For"],
    ["XFH broken quoting", ALL_X, ["X-Forwarded-Host", 'foo"'], "X-Forwarded-Host"],
    [
      "XFH quoted-pair cut by the closing quote",
      ALL_X,
      ["X-Forwarded-Host", '"example.com\\"'],
      "X-Forwarded-Host",
    ],
    // Unreachable from a client (the parser refuses CTLs), but undquote's own rule.
    ["XFH quoted-pair of a CTL", ALL_X, ["X-Forwarded-Host", '"a\\\x01b"'], "X-Forwarded-Host"],
    ["Forwarded quoted-pair cut", FWD, ["Forwarded", 'host="a\\"'], "Forwarded"],
    ["XFH with a path", ALL_X, ["X-Forwarded-Host", "evil.com/path"], "X-Forwarded-Host"],
    ["XFH with userinfo", ALL_X, ["X-Forwarded-Host", "user@evil.com"], "X-Forwarded-Host"],
    ["XFH port not a number", ALL_X, ["X-Forwarded-Host", "example.com:abc"], "X-Forwarded-Host"],
    ["Forwarded pair without =", FWD, ["Forwarded", "for"], "Forwarded"],
    [
      "Forwarded pair without =, one with after",
      FWD,
      ["Forwarded", "for;proto=https"],
      "Forwarded",
    ],
    ["Forwarded blank pair", FWD, ["Forwarded", "for=1.2.3.4; ;proto=https"], "Forwarded"],
    ["Forwarded space in value", FWD, ["Forwarded", 'For= "1.2.3.4"'], "Forwarded"],
    ["Forwarded space around token", FWD, ["Forwarded", "for=1.2.3.4; proto =https"], "Forwarded"],
    ["Forwarded spaces around =", FWD, ["Forwarded", "for = 1.2.3.4"], "Forwarded"],
    ["Forwarded broken quoting", FWD, ["Forwarded", 'for="1.2.3.4'], "Forwarded"],
    ["Forwarded bad proto", FWD, ["Forwarded", "proto=gopher"], "Forwarded Proto="],
    ["Forwarded bad host", FWD, ["Forwarded", 'host="a b"'], "Forwarded"],
  ];
  for (const [name, options, entry, expected] of cases) {
    test(name, () => {
      const logger = recorder();
      const result = applyProxyHeaders(config(options), view([entry]), logger);
      assert.deepEqual(result, { error: `Header "${expected}" malformed.` });
      assert.equal(logger.lines.length, 1);
      assert.match(logger.lines[0], /^warn: Malformed proxy header ".*" from "192\.168\.1\.1": /);
    });
  }

  test("an untrusted peer's malformed headers are just removed", () => {
    const cfg = config({ trustedProxy: "10.9.9.9", trustedProxyHeaders: "x-forwarded-proto" });
    const out = apply(cfg, view([["X-Forwarded-Proto", "ftp"]]));
    assert.deepEqual(out.headers, []);
  });
});
