// What an idle keep-alive connection holds: its parser goes back to the
// server's pool once nothing of a next request has arrived, and comes back
// clean for whichever connection takes it next. Also the server's list of
// connections (SlotList), which must survive removals while it is walked.
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { Channel, type ChannelOwner } from "../src/channel.ts";
import { SlotList } from "../src/connections.ts";
import { type ParserLimits, ParserPool, RequestParser } from "../src/parser.ts";
import { channelOwner } from "./helpers/channel_owner.ts";
import { RecordingSocket } from "./helpers/recording_socket.ts";

const bytes = (text: string) => new TextEncoder().encode(text);
const LIMITS: ParserLimits = { maxRequestHeaderSize: 64, maxRequestBodySize: 1000 };

/** A pool that counts the parsers out on loan. */
class CountingPool extends ParserPool {
  out = 0;
  override take(): RequestParser {
    this.out++;
    return super.take();
  }
  override give(parser: RequestParser): void {
    this.out--;
    super.give(parser);
  }
}

/** A connection that sends text. */
class MemorySocket extends RecordingSocket {
  send(text: string): void {
    this.handler.onData(bytes(text));
  }
}

function setup() {
  const pool = new CountingPool(LIMITS);
  const owner: ChannelOwner = {
    // No body: answered within the call on every runtime (a text body is
    // only where the runtime lets the server take it whole).
    ...channelOwner((request) =>
      new Response(null, { headers: { "x-path": new URL(request.url).pathname } })
    ),
    parsers: pool,
  };
  const open = () => {
    const socket = new MemorySocket();
    new Channel(owner, socket).start();
    return socket;
  };
  return { pool, open };
}

const get = (path: string) => `GET ${path} HTTP/1.1\r\nHost: x\r\n\r\n`;
const bodies = (out: string) => [...out.matchAll(/\r\nx-path: ([^\r]*)/g)].map((m) => m[1]);

describe("idle connections hold no parser", () => {
  test("a connection answered and idle has given its parser back", () => {
    const { pool, open } = setup();
    const a = open();
    assert.equal(pool.out, 0, "none taken before bytes arrive");
    a.send(get("/one"));
    assert.deepEqual(bodies(a.out), ["/one"]);
    assert.equal(pool.out, 0);
  });

  test("a partial head keeps its parser; the next connection gets another, and neither sees the other's bytes", () => {
    const { pool, open } = setup();
    const a = open();
    const b = open();
    a.send("GET /a HTTP/1.1\r\nHo");
    assert.equal(pool.out, 1);
    b.send(get("/b"));
    a.send("st: x\r\n\r\n");
    assert.deepEqual(bodies(a.out), ["/a"]);
    assert.deepEqual(bodies(b.out), ["/b"]);
    assert.equal(pool.out, 0);
    // The parsers are reused now, by turns, and still parse cleanly.
    b.send(get("/b2"));
    a.send(get("/a2"));
    assert.deepEqual(bodies(a.out), ["/a", "/a2"]);
    assert.deepEqual(bodies(b.out), ["/b", "/b2"]);
  });

  test("empty lines before a request keep the parser, so they still count toward the head limit", () => {
    const { pool, open } = setup();
    const a = open();
    for (let i = 0; i < 40 && !a.ended; i++) a.send("\r\n");
    assert.match(a.out, /^HTTP\/1\.1 431 /);
    assert.equal(a.ended, true);
    assert.equal(pool.out, 1, "the failed parser is dropped, not pooled");
  });

  test("a body being read keeps the parser until it ends", () => {
    const { pool, open } = setup();
    const a = open();
    a.send("POST /p HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n\r\nab");
    assert.equal(pool.out, 1);
    a.send("cd");
    assert.deepEqual(bodies(a.out), ["/p"]);
    assert.equal(pool.out, 0);
  });
});

/** A parser given `text`, whose first event is checked to be of `kind` (null: none yet). */
function fedParser(text: string, kind: string | null): RequestParser {
  const parser = new RequestParser(LIMITS);
  parser.push(bytes(text));
  const event = parser.next();
  assert.equal(event === null ? null : event.kind, kind);
  return parser;
}

describe("ParserPool", () => {
  test("takes back only parsers at rest, and hands them out again", () => {
    const pool = new ParserPool(LIMITS, 2);
    const p = pool.take();
    p.push(bytes(get("/")));
    assert.equal(p.next()?.kind, "head");
    assert.equal(p.atRest, false, "the end event is still to come");
    assert.equal(p.next()?.kind, "end");
    assert.equal(p.atRest, true);
    pool.give(p);
    assert.equal(pool.take(), p);

    const partial = fedParser("GET", null);
    assert.equal(partial.atRest, false);
    pool.give(partial);
    assert.notEqual(pool.take(), partial);

    const crlf = fedParser("\r\n", null);
    assert.equal(crlf.atRest, false, "skipped empty lines count toward the limit");

    const failed = fedParser("BAD\r\n\r\n", "error");
    assert.equal(failed.atRest, false);
  });

  test("keeps at most `max` spare parsers", () => {
    const pool = new ParserPool(LIMITS, 1);
    const a = pool.take();
    const b = pool.take();
    pool.give(a);
    pool.give(b);
    assert.equal(pool.take(), a);
    assert.notEqual(pool.take(), b);
  });
});

describe("SlotList", () => {
  const item = (name: string) => ({ name, slot: -1 });

  test("adds, removes in any order, and ignores what it does not hold", () => {
    const list = new SlotList<ReturnType<typeof item>>();
    const items = ["a", "b", "c", "d"].map(item);
    for (const it of items) list.add(it);
    list.delete(items[1]);
    list.delete(items[1]);
    list.delete(item("stranger"));
    assert.equal(list.size, 3);
    const seen: string[] = [];
    list.forEach((it) => seen.push(it.name));
    assert.deepEqual(seen.sort(), ["a", "c", "d"]);
    assert.equal(items[1].slot, -1);
  });

  test("a connection's slot and its flags share a field without disturbing each other", () => {
    const owner = channelOwner(() => new Response(null));
    const list = new SlotList<Channel>();
    const pairs = Array.from({ length: 300 }, () => {
      const socket = new MemorySocket();
      const channel = new Channel(owner, socket);
      channel.start();
      list.add(channel);
      return { socket, channel };
    });
    const { socket, channel } = pairs[299];
    assert.equal(channel.slot, 299);
    socket.send("GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    assert.equal(channel.closing, true);
    assert.equal(channel.closed, false);
    assert.equal(channel.slot, 299, "flags set after the slot leave it alone");
    list.delete(pairs[5].channel);
    assert.equal(channel.slot, 5, "moved into the freed slot");
    assert.equal(channel.closing, true, "and keeps its flags");
    channel.onClose();
    assert.equal(channel.closed, true);
    list.delete(channel);
    assert.equal(channel.slot, -1);
    assert.equal(list.size, 298);
  });

  test("every item is visited once when each removes itself", () => {
    const list = new SlotList<ReturnType<typeof item>>();
    for (const name of "abcdefg") list.add(item(name));
    const seen: string[] = [];
    list.forEach((it) => {
      seen.push(it.name);
      list.delete(it);
    });
    assert.deepEqual(seen.sort(), [..."abcdefg"]);
    assert.equal(list.size, 0);
  });

  test("no item is skipped when another one is removed meanwhile", () => {
    const list = new SlotList<ReturnType<typeof item>>();
    const items = [..."abcde"].map(item);
    for (const it of items) list.add(it);
    const seen = new Set<string>();
    list.forEach((it) => {
      seen.add(it.name);
      if (it.name === "e") list.delete(items[0]);
    });
    // "a" was removed before its turn; every item still listed was visited.
    assert.deepEqual([...seen].sort(), ["b", "c", "d", "e"]);
  });
});
