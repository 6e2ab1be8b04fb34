// Fuzzing the live server: thousands of seeded random mutations of valid
// requests, split at random points with random pauses, over real sockets.
// Every connection must end with well-formed responses and a close; the
// server never answers one request twice and keeps serving afterwards.
// Replay a failure with FUZZ_SEED=<seed printed in the message>.
import { test } from "node:test";
import assert from "node:assert/strict";
import { RawClient, recordingLogger, sleep, withServer } from "../helpers/http_client.ts";
import {
  checkResponses,
  fuzzSeed,
  latin1,
  mutate,
  pool,
  Rng,
  SEED_REQUESTS,
  splitRandomly,
} from "./helpers.ts";

const CASES = 1500;
const CONCURRENCY = 48;

// Forwarded and X-Forwarded-* cannot be trusted together: one run each.
const PROXY_MODES = [
  ["x-forwarded-for", "x-forwarded-proto", "x-forwarded-host"],
  ["forwarded"],
];

for (const [mode, headers] of PROXY_MODES.entries()) {
  test(`fuzz: ${CASES} mutated requests over real sockets, trusting ${headers}`, async () => {
    const seed = fuzzSeed(0x5eed1 + mode);
    const rng = new Rng(seed);
    let callNo = 0;
    const logger = recordingLogger();

    const app = async (request: Request): Promise<Response> => {
      const n = ++callNo;
      let size = 0;
      if (request.body) {
        try {
          size = (await request.arrayBuffer()).byteLength;
        } catch {
          size = -1; // the client went away or the body broke: the server answers
        }
      }
      // X-Call marks app answers. HEAD gets no body, so the checker never guesses framing.
      const init = { headers: { "x-call": String(n) } };
      return new Response(request.method === "HEAD" ? null : `${size}`, init);
    };

    await withServer(app, {
      logger,
      channelTimeout: 0.3,
      cleanupInterval: 0.1,
      maxRequestBodySize: 65536,
      maxRequestHeaderSize: 16384,
      channelRequestLookahead: 2,
      trustedProxy: "127.0.0.1",
      trustedProxyHeaders: headers,
    }, async (port) => {
      const failures: string[] = [];
      const answered = new Map<number, number>(); // X-Call -> times seen on the wire

      await pool(CASES, CONCURRENCY, async (i) => {
        if (failures.length > 0) return;
        const request = mutate(rng, rng.pick(SEED_REQUESTS));
        const parts = splitRandomly(rng, latin1(request));
        const pauses = parts.map(() => (rng.chance(0.3) ? rng.int(4) : 0));
        const halfClose = rng.chance(0.85);

        const client = await RawClient.connect(port);
        try {
          for (let p = 0; p < parts.length && !client.ended; p++) {
            if (pauses[p] > 0) await sleep(pauses[p]);
            client.send(parts[p]);
          }
          if (halfClose && !client.ended) client.shutdown();
          // Without a half-close, the head clock or the idle timeout (0.3 s) closes it.
          await client.until(() => false, 5000).catch(() => {});
          const fail = (msg: string): void => {
            failures.push(
              `case ${i} (seed ${seed}): ${msg}\nsent ${JSON.stringify(request.slice(0, 300))}\n` +
                `got ${JSON.stringify(client.text.slice(0, 400))}`,
            );
          };
          if (!client.ended) return fail("the server never closed the connection");
          const check = checkResponses(client.received, true);
          if (check.malformed) return fail(`malformed: ${check.malformed}`);
          if (check.leftover) return fail(`${check.leftover} bytes of a partial response`);
          // App answers carry X-Call; anything else is the server's own page, which
          // comes at most once, last, as an error (the connection then closed).
          const pages = check.finals.filter((r) => r.header("x-call") === undefined);
          if (pages.length > 1 || (pages.length === 1 && pages[0] !== check.finals.at(-1))) {
            return fail(`${pages.length} server responses among ${check.finals.length}`);
          }
          if (pages.length === 1 && pages[0].status < 400) {
            return fail(`server response ${pages[0].status}`);
          }
          for (const r of check.responses) {
            if (r.status < 200 && r.status !== 100) return fail(`interim ${r.status}`);
            const n = Number(r.header("x-call"));
            if (n) answered.set(n, (answered.get(n) ?? 0) + 1);
          }
        } finally {
          client.close();
        }
      });
      assert.deepEqual(failures, [], failures[0]);
      const twice = [...answered].filter(([, times]) => times > 1);
      assert.deepEqual(twice, [], `responses sent twice (seed ${seed})`);
      assert.ok(answered.size <= callNo, "no more app answers than app calls");

      // Nothing of ours broke, and a clean request on a fresh connection works.
      const internal = logger.lines.filter((l) => /Internal error/.test(l));
      assert.deepEqual(internal, [], `internal errors (seed ${seed})`);
      const clean = await RawClient.connect(port);
      clean.send("GET /clean HTTP/1.1\r\nHost: x\r\n\r\n");
      const [r] = await clean.responses(1);
      clean.close();
      assert.equal(r.status, 200);
      assert.ok(callNo > CASES / 10, `the app was reached (${callNo} calls)`);
    });
  });
}
