// When a connection stops reading: a Channel on an in-memory socket that
// records pause/resume. Pipelined requests that came in one read are served
// without a pause; a read that arrives while nothing can be parsed pauses,
// so held bytes stay bounded; a FIN that comes with pipelined requests still
// lets every one of them be answered; a finished response waits for the
// next one at most until the next macrotask.
import { test } from "node:test";
import assert from "node:assert/strict";
import { Channel, HOLD_BYTES } from "../src/channel.ts";
import type { Handler } from "../src/task.ts";
import { channelOwner } from "./helpers/channel_owner.ts";
import { RecordingSocket } from "./helpers/recording_socket.ts";

function open(handler: Handler): RecordingSocket {
  const socket = new RecordingSocket();
  new Channel(channelOwner(handler), socket).start();
  return socket;
}

const bytes = (text: string) => new TextEncoder().encode(text);
const get = (path: string) => `GET ${path} HTTP/1.1\r\nHost: x\r\n\r\n`;
const bodies = (out: string) => [...out.matchAll(/\r\n\r\n([^H]*)/g)].map((m) => m[1]);

/** An app whose answers wait until `release` is called. */
function gatedApp() {
  let open!: () => void;
  let gate = new Promise<void>((resolve) => (open = resolve));
  const app: Handler = async (request: Request) => {
    await gate;
    return new Response(new URL(request.url).pathname);
  };
  return {
    app,
    release() {
      open();
      gate = new Promise<void>((resolve) => (open = resolve));
    },
  };
}

const settle = () => new Promise((resolve) => setTimeout(resolve, 5));

test("pipelined requests from one read are answered without pausing the socket", async () => {
  const { app, release } = gatedApp();
  const socket = open(app);
  socket.handler.onData(bytes(get("/1") + get("/2") + get("/3")));
  for (let i = 0; i < 3; i++) {
    release();
    await settle();
  }
  assert.deepEqual(bodies(socket.out), ["/1", "/2", "/3"]);
  assert.deepEqual(socket.events, []);
});

/** A GET whose head carries `pad` bytes more. */
function padded(path: string, pad: number): string {
  return `GET ${path} HTTP/1.1\r\nHost: x\r\nX-Pad: ${"p".repeat(pad)}\r\n\r\n`;
}

test("reads that arrive while requests wait are held up to HOLD_BYTES, then reading pauses until they are served", async () => {
  const { app, release } = gatedApp();
  const socket = open(app);
  socket.handler.onData(bytes(get("/1") + get("/2")));
  assert.deepEqual(socket.events, [], "the first read is wanted");
  socket.handler.onData(bytes(get("/3")));
  assert.deepEqual(socket.events, [], "a little is held: reading goes on (a FIN is noticed)");
  socket.handler.onData(bytes(padded("/4", HOLD_BYTES)));
  assert.deepEqual(socket.events, ["pause"], "more than HOLD_BYTES held");
  for (let i = 0; i < 4; i++) {
    release();
    await settle();
  }
  assert.deepEqual(bodies(socket.out), ["/1", "/2", "/3", "/4"]);
  assert.deepEqual(socket.events, ["pause", "resume"]);
});

test("a FIN behind pipelined requests and a body: every request is answered, then the end", async () => {
  const socket = open(async (request: Request) => {
    await settle(); // the body of /2 is left unread: the server drains it
    return new Response(new URL(request.url).pathname);
  });
  socket.handler.onData(
    bytes(get("/1") + "POST /2 HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc" + get("/3")),
  );
  socket.handler.onEnd();
  for (let i = 0; i < 20 && !socket.ended; i++) await settle();
  assert.deepEqual(bodies(socket.out), ["/1", "/2", "/3"]);
  assert.ok(socket.ended, "the connection ends after the last response");
});

test("apps that answer at once: a pipelined batch stops at Connection: close, a throw is a 500", async () => {
  const socket = open((request: Request) => {
    const path = new URL(request.url).pathname;
    if (path === "/boom") throw new Error("app failed");
    return new Response(path);
  });
  socket.handler.onData(
    bytes(
      get("/1") + get("/boom") + get("/2") +
        "GET /3 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n" + get("/4"),
    ),
  );
  for (let i = 0; i < 20 && !socket.ended; i++) await settle();
  const statuses = [...socket.out.matchAll(/HTTP\/1\.1 (\d{3}) /g)].map((m) => m[1]);
  // The 500 closes the connection: nothing after /boom is answered.
  assert.deepEqual(statuses, ["200", "500"]);
  assert.ok(socket.ended);

  const second = open((request: Request) => new Response(new URL(request.url).pathname));
  second.handler.onData(
    bytes(get("/1") + "GET /2 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n" + get("/3")),
  );
  for (let i = 0; i < 20 && !second.ended; i++) await settle();
  assert.deepEqual(bodies(second.out), ["/1", "/2"]);
  assert.ok(second.ended);
});

test("a finished response waits for the one behind it only until the next macrotask, on every connection", async () => {
  let open2!: () => void;
  const gate = new Promise<void>((resolve) => (open2 = resolve));
  const app: Handler = async (request: Request) => {
    const path = new URL(request.url).pathname;
    if (path === "/slow") await gate;
    return new Response(path);
  };
  const sockets = [open(app), open(app), open(app)];
  for (const socket of sockets) socket.handler.onData(bytes(get("/fast") + get("/slow")));
  await Promise.resolve();
  for (const socket of sockets) assert.equal(socket.out, "", "held for a response done at once");
  await settle();
  for (const socket of sockets) assert.deepEqual(bodies(socket.out), ["/fast"]);
  open2();
  await settle();
  for (const socket of sockets) assert.deepEqual(bodies(socket.out), ["/fast", "/slow"]);
});

test("a client reading slowly but steadily is kept; one whose output stops moving is closed", async () => {
  const socket = new RecordingSocket();
  const channel = new Channel(channelOwner(() => new Response("x".repeat(1000))), socket);
  channel.start();
  socket.handler.onData(bytes(get("/")));
  await settle();
  socket.pendingBytes = 1000; // the kernel took none of it yet
  const limit = channel.adj.channelTimeout * 1000;
  for (let i = 1; i <= 3; i++) {
    // As if the last progress were long ago: the bytes the kernel takes now count.
    channel.lastActivity = 0;
    socket.handler.onSent(); // some bytes left, more wait
    socket.pendingBytes -= 100;
    channel.checkTimeouts(Date.now() + limit - 50);
    assert.equal(socket.closed, false, `closed at check ${i}`);
  }
  // No progress for longer than channelTimeout: the client stopped reading.
  channel.checkTimeouts(channel.lastActivity + limit + 1);
  assert.equal(socket.closed, true);
});

/** A socket whose client reads nothing until `drain()`: every byte written stays pending. */
class UnreadSocket extends RecordingSocket {
  /** Buffers written since the last drain. */
  buffers = 0;
  override write(data: Uint8Array): void {
    super.write(data);
    this.pendingBytes += data.byteLength;
    this.buffers++;
  }
  drain(): void {
    this.pendingBytes = 0;
    this.buffers = 0;
    this.handler.onDrain();
  }
}

for (const lookahead of [0, 3]) {
  test(`output above outbufHighWatermark holds the next requests until the client takes it (lookahead ${lookahead})`, async () => {
    const socket = new UnreadSocket();
    const paths: string[] = [];
    // Answers later, so that with a lookahead the next requests are queued
    // (parsed, not started) while one is served.
    const app: Handler = async (request: Request) => {
      paths.push(new URL(request.url).pathname);
      await null;
      return new Response("x".repeat(600));
    };
    const options = { outbufHighWatermark: 1000, channelRequestLookahead: lookahead };
    const channel = new Channel(channelOwner(app, options), socket);
    channel.start();
    const all = Array.from({ length: 8 }, (_, i) => get(`/${i}`));
    socket.handler.onData(bytes(all.slice(0, 6).join("")));
    await settle();
    // Two responses (1200 bytes with heads) pass the watermark: the rest wait.
    assert.deepEqual(paths, ["/0", "/1"]);
    socket.handler.onData(bytes(all.slice(6).join("")));
    assert.deepEqual(socket.events, [], "a little is held: reading goes on");
    socket.handler.onData(bytes("GET /partial HTTP/1.1\r\nX-Pad: " + "p".repeat(HOLD_BYTES)));
    assert.deepEqual(socket.events, ["pause"], "more than HOLD_BYTES held: reading pauses");
    // A client reading slowly but steadily: the heads we hold are not its delay.
    const limit = channel.adj.channelTimeout * 1000;
    channel.lastActivity = Date.now() + limit;
    channel.checkTimeouts(Date.now() + limit + 1);
    assert.equal(socket.closed, false);
    for (let round = 1; round <= 3; round++) {
      socket.drain();
      await settle();
      assert.deepEqual(paths, all.slice(0, 2 * round + 2).map((_, i) => `/${i}`));
    }
    socket.drain();
    await settle();
    // Paused while more than HOLD_BYTES wait unwanted (the partial head),
    // resumed whenever bytes are wanted; reading in the end.
    assert.match(socket.events.join(), /^(pause,resume,?)+$/);
    assert.equal(bodies(socket.out).length, 8);
  });
}

/** Answers of 2000 bytes (above a 1000-byte watermark); /1's waits until `release` is called. */
function bigAnswersApp(): { app: Handler; release: () => void } {
  const { app: gated, release } = gatedApp();
  const app: Handler = async (request: Request) => {
    if (new URL(request.url).pathname === "/1") await gated(request, undefined!);
    return new Response("x".repeat(2000));
  };
  return { app, release };
}

test("with a lookahead, a head the output holds back is not timed either", async () => {
  const { app, release } = bigAnswersApp();
  const socket = new UnreadSocket();
  const options = { outbufHighWatermark: 1000, channelRequestLookahead: 1 };
  const channel = new Channel(channelOwner(app, options), socket);
  channel.start();
  const started = Date.now();
  // /2's head is cut: its clock starts while /1 is served.
  socket.handler.onData(bytes(get("/1") + "GET /2 HTTP/1.1\r\nHo"));
  release();
  await settle(); // /1's answer holds the parse
  socket.handler.onData(bytes("st: x\r\n\r\n"));
  const limit = channel.adj.channelTimeout * 1000;
  channel.lastActivity = started + limit; // a slow but steady reader
  channel.checkTimeouts(started + limit + 10);
  assert.equal(socket.closed, false);
});

test("after a FIN, a request answered at once is not taken for the last one", async () => {
  // Half-closed with three requests queued: the first answers later, the
  // others at once, within the parse that the first one's end starts.
  const { app: gated, release } = gatedApp();
  const app: Handler = (request: Request) =>
    new URL(request.url).pathname === "/1" ? gated(request, undefined!) : new Response("now");
  let answeredAtEnd = -1;
  const socket = new (class extends RecordingSocket {
    override end(): void {
      if (answeredAtEnd < 0) answeredAtEnd = bodies(this.out).length;
      super.end();
    }
  })();
  new Channel(channelOwner(app), socket).start();
  socket.handler.onData(bytes(get("/1") + get("/2") + get("/3")));
  socket.handler.onEnd();
  release();
  await settle();
  assert.deepEqual(bodies(socket.out), ["/1", "now", "now"]);
  assert.equal(answeredAtEnd, 3, "closed only after the last answer");
});

test("requests held back by the output are still answered when the client half-closes", async () => {
  const socket = new UnreadSocket();
  const app: Handler = () => new Response("x".repeat(600));
  new Channel(channelOwner(app, { outbufHighWatermark: 1000 }), socket).start();
  socket.handler.onData(bytes(Array.from({ length: 6 }, (_, i) => get(`/${i}`)).join("")));
  socket.handler.onEnd(); // the client's FIN: it sent all it will, and still reads
  await settle();
  assert.equal(bodies(socket.out).length, 2);
  assert.equal(socket.ended, false, "not closed with requests still held");
  for (let round = 0; round < 3; round++) {
    socket.drain();
    await settle();
  }
  assert.equal(bodies(socket.out).length, 6);
  socket.drain();
  assert.equal(socket.ended, true);
});

test("a stream of tiny chunks to a client not reading stops at the watermark, counting what each buffer costs", async () => {
  const socket = new UnreadSocket();
  let pulls = 0;
  const one = new Uint8Array([0x61]);
  const app: Handler = () =>
    new Response(
      new ReadableStream<Uint8Array>({
        pull(controller) {
          pulls++;
          controller.enqueue(one);
        },
      }, { highWaterMark: 0 }),
    );
  const channel = new Channel(channelOwner(app, { outbufHighWatermark: 100_000 }), socket);
  channel.start();
  socket.handler.onData(bytes(get("/")));
  for (let i = 0; i < 20; i++) await settle();
  // Each 1-byte chunk queues two buffers (its size line and its byte), 6
  // bytes: counted as bytes, 100,000 would be ~33,000 buffers; counted at
  // what they cost, a few hundred. (The chunks ready at first are joined
  // into one buffer.)
  assert.ok(socket.buffers > 100 && socket.buffers < 1000, `${socket.buffers} buffers queued`);
  const held = pulls;
  socket.drain();
  for (let i = 0; i < 20 && pulls < 2 * held; i++) await settle();
  assert.ok(pulls > held, "the stream goes on once the client takes its output");
  socket.destroy();
  socket.handler.onClose();
});

/** An UnreadSocket that, like the adapters, holds reads and the FIN while paused. */
class HoldingSocket extends UnreadSocket {
  #paused = false;
  #held: Uint8Array[] = [];
  #heldEnd = false;
  override pause(): void {
    super.pause();
    this.#paused = true;
  }
  override resume(): void {
    super.resume();
    this.#paused = false;
    while (this.#held.length > 0 && !this.#paused) this.handler.onData(this.#held.shift()!);
    if (!this.#paused && this.#heldEnd) {
      this.#heldEnd = false;
      this.handler.onEnd();
    }
  }
  send(text: string): void {
    if (this.#paused) this.#held.push(bytes(text));
    else this.handler.onData(bytes(text));
  }
  fin(): void {
    if (this.#paused) this.#heldEnd = true;
    else this.handler.onEnd();
  }
}

test("reading resumes when the output that held the parse is taken, also once the parser came to rest", async () => {
  const { app, release } = bigAnswersApp();
  const socket = new HoldingSocket();
  new Channel(channelOwner(app, { outbufHighWatermark: 1000 }), socket).start();
  const length = HOLD_BYTES + 10;
  socket.send(`POST /1 HTTP/1.1\r\nHost: x\r\nContent-Length: ${length}\r\n\r\n01234`);
  // The rest of the body, not wanted yet and more than HOLD_BYTES: reading pauses.
  socket.send("5".repeat(length - 5));
  assert.deepEqual(socket.events, ["pause"]);
  release(); // the answer holds the parse; the drained body leaves the parser at rest
  await settle();
  socket.drain();
  socket.send("GET /2 HTTP/1.1\r\nHost: x\r\n\r\n");
  socket.fin();
  await settle();
  assert.equal(bodies(socket.out).length, 2, "GET /2 is answered");
  assert.equal(socket.ended, true, "then the connection ends");
});

test("a Connection: close request read ahead closes after its own response, not the one before", async () => {
  const { app: gated, release } = gatedApp();
  const app: Handler = (request: Request) =>
    new URL(request.url).pathname === "/1" ? gated(request, undefined!) : new Response("/2");
  const socket = new RecordingSocket();
  new Channel(channelOwner(app, { channelRequestLookahead: 1 }), socket).start();
  socket.handler.onData(
    bytes(get("/1") + "GET /2 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"),
  );
  release();
  await settle();
  const [first, second] = socket.out.split(/(?=HTTP\/1\.1 )/);
  assert.doesNotMatch(first, /connection: close/i);
  assert.match(first, /\r\n\r\n\/1$/);
  assert.match(second, /connection: close\r\n/i);
  assert.match(second, /\r\n\r\n\/2$/);
  assert.equal(socket.ended, true);
});

test("a fault of ours in a socket event is logged and drops the connection, never thrown to the runtime", () => {
  const errors: string[] = [];
  const owner = channelOwner(() => new Response("x"), {
    logger: { info() {}, warn() {}, error: (line: string) => errors.push(line) },
  });
  owner.parsers.take = () => {
    throw new Error("a bug");
  };
  const socket = new RecordingSocket();
  new Channel(owner, socket).start();
  socket.handler.onData(bytes(get("/")));
  assert.equal(socket.closed, true);
  assert.deepEqual(errors, ["Internal error on a connection"]);
});

test("a fault of ours in onEnd, onDrain or when an app's promise settles is logged and drops the connection", async () => {
  const errors: string[] = [];
  const start = (handler: Handler) => {
    const owner = channelOwner(handler, {
      logger: { info() {}, warn() {}, error: (line: string) => errors.push(line) },
    });
    const socket = new RecordingSocket();
    new Channel(owner, socket).start();
    return socket;
  };
  const broken = () => {
    throw new Error("a bug");
  };
  // onEnd: an idle connection the client half-closes is ended.
  const idle = start(() => new Response("x"));
  idle.end = broken;
  idle.handler.onEnd();
  assert.equal(idle.closed, true);
  // onDrain: a connection that was ending is ended again once its output drains.
  // No body: answered within onData on every runtime.
  const ending = start(() => new Response(null));
  ending.handler.onData(bytes("GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"));
  assert.equal(ending.ended, true);
  ending.end = broken;
  ending.handler.onDrain();
  assert.equal(ending.closed, true);
  // A task whose app answered later: the connection is then ended (Connection: close).
  const later = start(async () => {
    await settle();
    return new Response("x");
  });
  later.end = broken;
  later.handler.onData(bytes("GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"));
  for (let i = 0; i < 100 && !later.closed; i++) await settle();
  assert.equal(later.closed, true);
  assert.deepEqual(errors, Array(3).fill("Internal error on a connection"));
});

test("a closed connection ignores what comes late: a second onClose, writes, a 100 Continue, the timer", () => {
  let closes = 0;
  const owner = channelOwner(() => new Response("x"));
  owner.channelClosed = () => void closes++;
  const socket = new RecordingSocket();
  const channel = new Channel(owner, socket);
  channel.start();
  socket.handler.onData(bytes("GET / HT"));
  socket.handler.onClose();
  socket.handler.onClose(new Error("again"));
  channel.write(bytes("late"));
  channel.flush();
  channel.sendContinue();
  channel.checkTimeouts(Date.now() + 3_600_000);
  socket.handler.onDrain();
  assert.equal(closes, 1);
  assert.equal(socket.out, "");
  assert.equal(socket.closed, false, "the runtime closed it; nothing more to do");
});

test("a chunked body's chunks that come in one read reach the app as one chunk", async () => {
  // Held one by one by an app that buffers the body, 1-byte chunks cost
  // ~500 bytes each: 6 bytes sent could take 500 of memory.
  const seen: number[][] = [];
  const socket = open(async (request: Request) => {
    if (request.body === null) return new Response(new URL(request.url).pathname);
    const sizes: number[] = [];
    const reader = request.body.getReader();
    for (let r = await reader.read(); !r.done; r = await reader.read()) {
      sizes.push(r.value.byteLength);
    }
    seen.push(sizes);
    return new Response(String(sizes.reduce((a, b) => a + b, 0)));
  });
  const post = "POST /up HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n";
  // 3000 one-byte chunks in one read, then 2000 more with an extension in the next.
  socket.handler.onData(bytes(post + "1\r\na\r\n".repeat(3000)));
  await settle();
  socket.handler.onData(bytes("1;x=y\r\nb\r\n".repeat(2000) + "0\r\n\r\n" + get("/next")));
  await settle();
  await settle();
  assert.deepEqual(seen, [[3000, 2000]]);
  assert.deepEqual(bodies(socket.out), ["5000", "/next"]);
});
