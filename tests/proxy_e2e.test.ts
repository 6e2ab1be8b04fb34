// Trusted proxy headers end to end: a real server behind a small forwarding
// proxy on loopback (it adds the headers a reverse proxy adds), plus unix
// socket peers. Raw request bytes, both runtimes.
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import {
  connect,
  createServer as createNetServer,
  type Server as NetServer,
  type Socket as NetSocket,
} from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createServer, type Options, type RequestInfo, type Server } from "../mod.ts";
import type { Logger } from "../src/logger.ts";

function recorder(): Logger & { lines: string[] } {
  const lines: string[] = [];
  const push = (level: string) => (...args: unknown[]) => {
    lines.push(`${level}: ${args.map(String).join(" ")}`);
  };
  return { lines, info: push("info"), warn: push("warn"), error: push("error") };
}

/** The app: reports what it saw as JSON. */
function echo(request: Request, info: RequestInfo): Response {
  const proxyHeaders: Record<string, string> = {};
  for (const [name, value] of request.headers) {
    if (name.startsWith("x-forwarded-") || name === "forwarded") proxyHeaders[name] = value;
  }
  return Response.json({
    url: request.url,
    host: request.headers.get("host"),
    scheme: info.scheme,
    remote: info.remoteAddr,
    ip: info.requestIP(),
    proxyHeaders,
  });
}

async function start(options: Options): Promise<Server & { logger: ReturnType<typeof recorder> }> {
  const logger = recorder();
  const server = createServer(echo, { logger, ...options });
  await server.ready;
  server.run();
  return Object.assign(server, { logger });
}

/**
 * A forwarding proxy: for each client connection it opens one to `target`
 * and inserts `extra` header lines after the first request line (enough for
 * one request per connection, which is all these tests send).
 */
async function proxy(
  target: number,
  extra: string,
): Promise<{ port: number; close(): Promise<void> }> {
  const sockets = new Set<NetSocket>();
  const server: NetServer = createNetServer((client) => {
    const upstream = connect({ host: "127.0.0.1", port: target });
    sockets.add(client).add(upstream);
    let first = true;
    client.on("data", (chunk: Uint8Array) => {
      if (!first) return upstream.write(chunk);
      first = false;
      const text = new TextDecoder("latin1").decode(chunk);
      const end = text.indexOf("\r\n") + 2;
      upstream.write(text.slice(0, end) + extra + text.slice(end));
    });
    upstream.on("data", (chunk: Uint8Array) => client.write(chunk));
    upstream.on("end", () => client.end());
    client.on("end", () => upstream.end());
    for (const socket of [client, upstream]) {
      socket.on("error", () => {});
      socket.on("close", () => {
        sockets.delete(socket);
        client.destroy();
        upstream.destroy();
      });
    }
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return {
    port: (server.address() as { port: number }).port,
    close: () =>
      new Promise<void>((resolve) => {
        for (const socket of sockets) socket.destroy();
        server.close(() => resolve());
      }),
  };
}

/**
 * Runs `check` against a server with `options` on 127.0.0.1, reached
 * through a proxy that adds the header lines `extra`; then closes both.
 */
async function behindProxy(
  options: Options,
  extra: string,
  check: (front: { port: number }, server: Awaited<ReturnType<typeof start>>) => Promise<void>,
): Promise<void> {
  const server = await start({ host: "127.0.0.1", port: 0, ...options });
  const front = await proxy(server.addr.port!, extra);
  try {
    await check(front, server);
  } finally {
    await front.close();
    await server.close();
  }
}

/** Sends one request (Connection: close) and returns [status, body]. */
function request(
  to: { port: number; host?: string } | { path: string },
  path: string,
  headers = "",
): Promise<[number, string]> {
  return new Promise((resolve, reject) => {
    const socket = "port" in to
      ? connect({ host: to.host ?? "127.0.0.1", port: to.port })
      : connect(to.path);
    let text = "";
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`no response; got ${JSON.stringify(text)}`));
    }, 10000);
    socket.on("connect", () => {
      socket.write(
        `GET ${path} HTTP/1.1\r\nHost: backend.local:8080\r\n${headers}Connection: close\r\n\r\n`,
      );
    });
    socket.on("data", (chunk: Uint8Array) => (text += new TextDecoder().decode(chunk)));
    socket.on("error", (error) => {
      clearTimeout(timer);
      reject(error);
    });
    socket.on("close", () => {
      clearTimeout(timer);
      const head = text.indexOf("\r\n\r\n");
      let body = text.slice(head + 4);
      if (/\r\ntransfer-encoding: chunked/i.test(text.slice(0, head))) body = unchunk(body);
      resolve([Number(text.slice(9, 12)), body]);
    });
  });
}

function unchunk(body: string): string {
  let out = "";
  let rest = body;
  while (true) {
    const line = rest.indexOf("\r\n");
    const size = parseInt(rest.slice(0, line), 16);
    if (!size) return out;
    out += rest.slice(line + 2, line + 2 + size);
    rest = rest.slice(line + 4 + size);
  }
}

describe("behind a forwarding proxy on loopback", () => {
  test("X-Forwarded-For/Proto/Host from the trusted proxy rewrite the request", async () => {
    await behindProxy(
      {
        trustedProxy: "127.0.0.1",
        trustedProxyHeaders: ["x-forwarded-for", "x-forwarded-proto", "x-forwarded-host"],
      },
      "X-Forwarded-For: 203.0.113.7\r\nX-Forwarded-Proto: https\r\nX-Forwarded-Host: shop.example\r\n",
      async (front) => {
        const [status, body] = await request(front, "/cart?id=3");
        assert.equal(status, 200);
        const seen = JSON.parse(body);
        assert.equal(seen.url, "https://shop.example/cart?id=3");
        assert.equal(seen.host, "shop.example");
        assert.equal(seen.scheme, "https");
        assert.deepEqual(seen.remote, { transport: "tcp", hostname: "203.0.113.7" });
      },
    );
  });

  test("a client's own spoofed X-Forwarded-For is not trusted past the proxy count", async () => {
    await behindProxy(
      { trustedProxy: "127.0.0.1", trustedProxyHeaders: "x-forwarded-for" },
      // nginx's $proxy_add_x_forwarded_for appends the real peer to what the client sent.
      "X-Forwarded-For: 6.6.6.6, 198.51.100.4\r\n",
      async (front) => {
        const seen = JSON.parse((await request(front, "/"))[1]);
        assert.equal(seen.remote.hostname, "198.51.100.4");
        // Bun's requestIP() shape, as Hono's getConnInfo for Bun reads it; no port was named.
        assert.deepEqual(seen.ip, { address: "198.51.100.4", family: "IPv4", port: 0 });
        assert.equal(seen.proxyHeaders["x-forwarded-for"], "198.51.100.4");
      },
    );
  });

  test("Forwarded with a quoted IPv6 client and port", async () => {
    await behindProxy(
      { trustedProxy: "127.0.0.1", trustedProxyHeaders: "forwarded" },
      'Forwarded: for="[2001:db8::1]:4711";proto=https;host="api.example:8443"\r\n',
      async (front) => {
        const seen = JSON.parse((await request(front, "/v1"))[1]);
        assert.deepEqual(seen.remote, { transport: "tcp", hostname: "2001:db8::1", port: 4711 });
        assert.deepEqual(seen.ip, { address: "2001:db8::1", family: "IPv6", port: 4711 });
        assert.equal(seen.url, "https://api.example:8443/v1");
        assert.equal(seen.scheme, "https");
      },
    );
  });

  test("Forwarded: a client's malformed element before the proxy's is not read", async () => {
    await behindProxy(
      { trustedProxy: "127.0.0.1", trustedProxyHeaders: "forwarded" },
      // nginx: proxy_set_header Forwarded "$http_forwarded, for=$remote_addr;proto=$scheme"
      'Forwarded: for="6.6.6.6;spam=1, for=198.51.100.4;proto=https\r\n',
      async (front, server) => {
        const [status, body] = await request(front, "/");
        assert.equal(status, 200);
        const seen = JSON.parse(body);
        assert.equal(seen.remote.hostname, "198.51.100.4");
        assert.equal(seen.scheme, "https");
        assert.equal(seen.proxyHeaders["forwarded"], "for=198.51.100.4;proto=https");
        assert.deepEqual(server.logger.lines, []);
      },
    );
  });

  test("a quoted-pair in a trusted host is unescaped; one that escapes the closing quote is a 400", async () => {
    const server = await start({
      host: "127.0.0.1",
      port: 0,
      trustedProxy: "127.0.0.1",
      trustedProxyHeaders: "x-forwarded-host",
    });
    try {
      const to = { port: server.addr.port! };
      const [status, body] = await request(to, "/q", 'X-Forwarded-Host: "sh\\op.example"\r\n');
      assert.equal(status, 200);
      assert.equal(JSON.parse(body).url, "http://shop.example/q");
      const [bad, page] = await request(to, "/q", 'X-Forwarded-Host: "shop.example\\"\r\n');
      assert.equal(bad, 400);
      assert.match(page, /Header "X-Forwarded-Host" malformed\./);
    } finally {
      await server.close();
    }
  });

  test("a client named by an obfuscated identifier: requestIP() is null", async () => {
    await behindProxy(
      { trustedProxy: "127.0.0.1", trustedProxyHeaders: "forwarded" },
      "Forwarded: for=_hidden;proto=https\r\n",
      async (front) => {
        const seen = JSON.parse((await request(front, "/"))[1]);
        assert.deepEqual(seen.remote, { transport: "tcp", hostname: "_hidden" });
        assert.equal(seen.ip, null);
      },
    );
  });

  test("a malformed trusted header gets 400 naming it; the app is not called", async () => {
    const server = await start({
      host: "127.0.0.1",
      port: 0,
      trustedProxy: "127.0.0.1",
      trustedProxyHeaders: "x-forwarded-proto",
    });
    try {
      // Not a scheme; a scheme with spaces inside its quotes (as waitress, not trimmed).
      for (const value of ["ftp", '" https "']) {
        const front = await proxy(server.addr.port!, `X-Forwarded-Proto: ${value}\r\n`);
        try {
          const [status, body] = await request(front, "/");
          assert.equal(status, 400, value);
          assert.match(body, /Header "X-Forwarded-Proto" malformed\./);
        } finally {
          await front.close();
        }
      }
      assert.ok(
        server.logger.lines.some((line) => /Malformed proxy header "X-Forwarded-Proto"/.test(line)),
      );
    } finally {
      await server.close();
    }
  });

  test("headers from an untrusted peer are removed (and logged when asked)", async () => {
    await behindProxy(
      {
        trustedProxy: "10.0.0.1",
        trustedProxyHeaders: "x-forwarded-for",
        logUntrustedProxyHeaders: true,
      },
      "X-Forwarded-For: 203.0.113.7\r\nForwarded: for=1.1.1.1\r\n",
      async (front, server) => {
        const seen = JSON.parse((await request(front, "/"))[1]);
        assert.equal(seen.remote.hostname, "127.0.0.1");
        assert.deepEqual(seen.proxyHeaders, {});
        assert.ok(
          server.logger.lines.some((line) =>
            /Removed untrusted headers \(X-Forwarded-For, Forwarded\)/.test(line)
          ),
        );
      },
    );
  });

  test("default options strip proxy headers", async () => {
    const server = await start({ host: "127.0.0.1", port: 0 });
    try {
      const [, body] = await request(
        { port: server.addr.port! },
        "/",
        "X-Forwarded-Proto: https\r\nX-Forwarded-Host: evil.example\r\n",
      );
      const seen = JSON.parse(body);
      assert.deepEqual(seen.proxyHeaders, {});
      assert.equal(seen.scheme, "http");
      assert.equal(seen.url, "http://backend.local:8080/");
    } finally {
      await server.close();
    }
  });
});

describe("IPv6 peers", () => {
  test("a trustedProxy written in another IPv6 form still matches the peer", async () => {
    for (const trustedProxy of ["0:0:0:0:0:0:0:1", "[::0001]"]) {
      const server = await start({
        host: "::1",
        port: 0,
        trustedProxy,
        trustedProxyHeaders: "x-forwarded-for",
      });
      try {
        const to = { host: "::1", port: server.addr.port! };
        const [status, body] = await request(to, "/v6", "X-Forwarded-For: 192.0.2.45\r\n");
        assert.equal(status, 200);
        assert.deepEqual(JSON.parse(body).remote, { transport: "tcp", hostname: "192.0.2.45" });
      } finally {
        await server.close();
      }
    }
  });
});

describe("unix socket peers", () => {
  test('a unix-socket peer is "localhost" for trustedProxy', async () => {
    const path = join(
      tmpdir(),
      `waitress-proxy-${Date.now()}-${Math.random().toString(36).slice(2)}.sock`,
    );
    const server = await start({
      unixSocket: path,
      trustedProxy: "localhost",
      trustedProxyHeaders: "x-forwarded-for x-forwarded-proto",
    });
    try {
      const [status, body] = await request(
        { path },
        "/u",
        "X-Forwarded-For: 192.0.2.44\r\nX-Forwarded-Proto: https\r\n",
      );
      assert.equal(status, 200);
      const seen = JSON.parse(body);
      assert.deepEqual(seen.remote, { transport: "tcp", hostname: "192.0.2.44" });
      assert.equal(seen.scheme, "https");
      // The unix peer itself, without a proxy header, has no IP address.
      const [, direct] = await request({ path }, "/u", "");
      assert.equal(JSON.parse(direct).ip, null);
    } finally {
      await server.close();
    }
  });
});
