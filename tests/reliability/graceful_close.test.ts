// Graceful close under load: close() while 100 requests are in flight lets
// every one complete, refuses new connections, closes idle ones at once, and
// resolves `finished`. With a timeout, handlers that never settle do not
// hold the server open.
import { test } from "node:test";
import assert from "node:assert/strict";
import { createServer } from "../../mod.ts";
import { RawClient, recordingLogger, sleep } from "../helpers/http_client.ts";
import { checkResponses, waitFor } from "./helpers.ts";

const IN_FLIGHT = 100;

test(`close() with ${IN_FLIGHT} requests in flight: all complete, new connections refused, finished resolves`, async () => {
  let release!: () => void;
  const gate = new Promise<void>((resolve) => (release = resolve));
  let inFlight = 0;
  const server = createServer(async (request) => {
    if (new URL(request.url).pathname === "/quick") return new Response("quick");
    inFlight++;
    await gate;
    inFlight--;
    return new Response("done");
  }, {
    host: "127.0.0.1",
    port: 0,
    connectionLimit: IN_FLIGHT + 10,
    logger: recordingLogger(),
  });
  await server.ready;
  server.run();
  const port = server.addr.port!;

  const idle = await RawClient.connect(port);
  idle.send("GET /quick HTTP/1.1\r\nHost: x\r\n\r\n");
  await idle.responses(1);

  const clients = await Promise.all(
    Array.from({ length: IN_FLIGHT }, () => RawClient.connect(port)),
  );
  for (const c of clients) c.send("GET /slow HTTP/1.1\r\nHost: x\r\n\r\n");
  await waitFor(() => inFlight === IN_FLIGHT, 5000, `${IN_FLIGHT} requests in flight`);

  let finished = false;
  server.finished.then(() => (finished = true));
  const closing = server.close();

  // The idle keep-alive connection is closed at once; new connections are refused.
  await idle.closedByServer(2000);
  idle.close();
  let refused = false;
  for (let i = 0; i < 50 && !refused; i++) {
    try {
      const late = await RawClient.connect(port);
      late.close();
      await sleep(20);
    } catch {
      refused = true;
    }
  }
  assert.ok(refused, "new connections are refused once close() started");
  assert.equal(finished, false, "finished waits for the requests in flight");

  release();
  await Promise.all(clients.map((c) => c.closedByServer(5000)));
  for (const c of clients) {
    const r = checkResponses(c.received, true);
    assert.equal(r.malformed, null);
    assert.equal(r.finals.length, 1);
    assert.equal(r.finals[0].status, 200);
    assert.equal(new TextDecoder().decode(r.finals[0].body), "done");
    c.close();
  }
  await closing;
  await server.finished;
  assert.equal(finished, true);
});

test("close({ timeout }) does not wait for handlers that never settle", async () => {
  let aborted = 0;
  let called = 0;
  const server = createServer((_request, info) => {
    info.signal.addEventListener("abort", () => aborted++);
    called++;
    return new Promise<Response>(() => {}); // never settles
  }, { host: "127.0.0.1", port: 0, logger: recordingLogger() });
  await server.ready;
  server.run();
  const clients = await Promise.all(
    Array.from({ length: 10 }, () => RawClient.connect(server.addr.port!)),
  );
  for (const c of clients) c.send("GET / HTTP/1.1\r\nHost: x\r\n\r\n");
  // All ten in flight when close() comes (one whose request is not read yet is idle: closed at once).
  await waitFor(() => called === 10, 5000, "every handler called");
  const t0 = Date.now();
  await server.close({ timeout: 300 });
  await server.finished;
  const took = Date.now() - t0;
  assert.ok(took >= 250 && took < 3000, `close took ${took} ms`);
  await Promise.all(clients.map((c) => c.closedByServer(2000)));
  for (const c of clients) c.close();
  await waitFor(() => aborted === 10, 2000, "every handler's signal aborted");
});
