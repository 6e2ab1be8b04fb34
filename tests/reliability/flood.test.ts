// Floods: 2 × connectionLimit concurrent connections. The extra ones wait
// (accepted later, never dropped), the server never holds more than the
// limit, and once capacity frees every one is served; idle keep-alive
// connections are closed to make room.
import { test } from "node:test";
import assert from "node:assert/strict";
import { RawClient, sleep, withServer } from "../helpers/http_client.ts";
import { checkResponses, waitFor } from "./helpers.ts";

const LIMIT = 20;

/** An app whose calls wait for `open()`; counts calls in flight and the maximum seen. */
function gatedApp() {
  let release!: () => void;
  const gate = new Promise<void>((resolve) => (release = resolve));
  const state = { inFlight: 0, max: 0, calls: 0 };
  const app = async (): Promise<Response> => {
    state.calls++;
    state.max = Math.max(state.max, ++state.inFlight);
    await gate;
    state.inFlight--;
    return new Response("served");
  };
  return { app, state, open: () => release() };
}

test(`flood of ${2 * LIMIT} connections with connectionLimit ${LIMIT}: extras wait, none dropped`, async () => {
  const { app, state, open } = gatedApp();
  await withServer(app, { connectionLimit: LIMIT }, async (port) => {
    const clients = await Promise.all(
      Array.from({ length: 2 * LIMIT }, () => RawClient.connect(port)),
    );
    for (const c of clients) c.send("GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    await waitFor(() => state.inFlight === LIMIT, 3000, `${LIMIT} calls in flight`);
    await sleep(300);
    assert.equal(state.calls, LIMIT, "only connections within the limit were read");
    assert.equal(state.max, LIMIT);
    assert.ok(
      clients.every((c) => !c.ended && c.received.length === 0),
      "nobody answered or dropped",
    );

    open();
    // Clients close once answered, as real ones do (the server lingers until then).
    await Promise.all(clients.map(async (c) => {
      await c.closedByServer(5000);
      c.close();
    }));
    for (const c of clients) {
      const r = checkResponses(c.received, true);
      assert.equal(r.malformed, null);
      assert.equal(r.finals.length, 1, "every connection got its response");
      assert.equal(r.finals[0].status, 200);
      assert.equal(c.error, null, "no reset");
    }
    assert.equal(state.calls, 2 * LIMIT);
    assert.ok(state.max <= LIMIT, `at most ${LIMIT} connections served at once (saw ${state.max})`);
  });
});

test("idle keep-alive connections make room for waiting ones: all are served, the idle ones closed", async () => {
  await withServer(() => new Response("ok"), { connectionLimit: LIMIT }, async (port) => {
    const request = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";
    const pool = async () => {
      const clients = await Promise.all(
        Array.from({ length: LIMIT }, () => RawClient.connect(port)),
      );
      for (const c of clients) c.send(request);
      await Promise.all(clients.map((c) => c.responses(1, 5000)));
      return clients;
    };
    const first = await pool();
    // Each waiting connection has an idle one closed for it.
    const extra = await pool();
    await Promise.all(first.map((c) => c.closedByServer()));
    for (const c of first) c.close();
    const again = await pool();
    await Promise.all(extra.map((c) => c.closedByServer()));
    for (const c of [...extra, ...again]) c.close();
  });
});

test(
  "connections reset while waiting to be accepted do not stall accepting",
  async () => {
    await withServer(() => new Response("ok"), { connectionLimit: 1 }, async (port) => {
      // Hold the only slot so the next connections wait to be accepted.
      const holder = await RawClient.connect(port);
      holder.send("GET / HTTP/1.1\r\nHost: x\r\n\r\n");
      await holder.responses(1);
      const quitters = await Promise.all(Array.from({ length: 40 }, () => RawClient.connect(port)));
      for (const q of quitters) q.send("GET / HTTP/1.1\r\nHo");
      await sleep(50);
      for (const q of quitters) q.socket.resetAndDestroy();
      await sleep(50);
      holder.close();
      const t0 = Date.now();
      const c = await RawClient.connect(port);
      c.send("GET / HTTP/1.1\r\nHost: x\r\n\r\n");
      await c.responses(1, 10000);
      c.close();
      const took = Date.now() - t0;
      assert.ok(took < 500, `a client behind 40 reset connections waited ${took} ms`);
    });
  },
);

test("after a request that closes the connection, what the client goes on sending is not read", async () => {
  // Else the runtime reads (and the server drops) all a client sends, at
  // line rate, for as long as the app takes.
  let started!: () => void;
  const appStarted = new Promise<void>((resolve) => (started = resolve));
  const app = async () => {
    started();
    await sleep(300);
    return new Response("done");
  };
  await withServer(app, {}, async (port) => {
    const c = await RawClient.connect(port);
    c.send("GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    await appStarted;
    const junk = new Uint8Array(1 << 20).fill(0x6a);
    const until = Date.now() + 250;
    while (Date.now() < until && !c.ended) {
      if (!c.socket.write(junk)) {
        await new Promise((resolve) => {
          const timer = setTimeout(resolve, Math.max(0, until - Date.now()));
          c.socket.once("drain", () => resolve(clearTimeout(timer)));
        });
      }
    }
    // Handed to the kernel (the rest waits in the client's own buffer).
    const accepted = c.socket.bytesWritten - c.socket.writableLength;
    await c.closedByServer(5000);
    c.close();
    assert.ok(c.text.startsWith("HTTP/1.1 200 OK"), c.text.slice(0, 60));
    // What the kernel's buffers take: a few MiB, not hundreds.
    assert.ok(accepted < 64 << 20, `${accepted >> 20} MiB taken`);
  });
});
