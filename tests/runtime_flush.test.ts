// Output batching of the native adapter: writes to many sockets in one turn
// (flushed together at the end of the turn), a write made from onDrain, and
// a write after destroy.
import { test } from "node:test";
import assert from "node:assert/strict";
import { detectRuntime } from "../src/runtime/mod.ts";
import type { Socket } from "../src/runtime/mod.ts";
import { client, record, until } from "./helpers/socket_util.ts";

const native = await detectRuntime();

test(
  "writes to several sockets in one turn all arrive, each in order",
  { timeout: 20_000 },
  async () => {
    const l = await native.listen({ transport: "tcp", hostname: "127.0.0.1", port: 0 });
    const sockets: Socket[] = [];
    l.start((s) => sockets.push(s));
    try {
      const clients = await Promise.all([0, 1, 2, 3].map(() => client(l.addr)));
      await until(() => sockets.length === 4, 5000, "accept");
      const recorders = sockets.slice(1).map((s) => record(s));
      // Socket 0 writes again each time it drains, until it has sent 5 parts.
      let parts = 1;
      const first = recorders[0];
      sockets[0].start({
        onData() {},
        onEnd() {},
        onClose() {},
        onSent() {},
        onDrain() {
          first.drains++;
          if (parts < 5) sockets[0].write(new TextEncoder().encode(`[${parts++}]`));
        },
      });
      const encoder = new TextEncoder();
      for (const [i, s] of sockets.entries()) {
        s.write(encoder.encode(`${i}:a `));
        s.write(encoder.encode(`${i}:b `));
        assert.equal(s.pendingBytes, 8);
      }
      sockets[3].destroy();
      sockets[3].write(encoder.encode("ignored"));
      assert.equal(sockets[3].pendingBytes, 0);
      const text = (c: typeof clients[number]) => new TextDecoder().decode(c.data());
      await clients[0].bytes(8 + 4 * 3);
      assert.equal(text(clients[0]), "0:a 0:b [1][2][3][4]");
      for (const i of [1, 2]) {
        await clients[i].bytes(8);
        assert.equal(text(clients[i]), `${i}:a ${i}:b `);
        assert.equal(sockets[i].pendingBytes, 0);
      }
      await clients[3].ended;
      assert.equal(clients[3].received, 0);
      for (const s of sockets) s.destroy();
      for (const c of clients) c.sock.destroy();
      assert.equal(recorders[2].closes.length, 1, "the destroyed one closed once");
    } finally {
      await l.close();
    }
  },
);
