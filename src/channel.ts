/**
 * One connection: bytes in → parsed requests → tasks served one at a time in
 * order → bytes out. Owns keep-alive, pipelining lookahead, output batching
 * and backpressure, and the rules for closing. Sans-IO: it drives a `Socket`
 * from `runtime/types.ts` and never names a runtime.
 * @module
 */
import type { Adjustments } from "./adjustments.ts";
import {
  type ParseError,
  parseError,
  type ParseEvent,
  type ParserPool,
  type RequestParser,
} from "./parser.ts";
import type { TaskRunner } from "./runner.ts";
import type { Addr, Socket, SocketHandler } from "./runtime/types.ts";
import { formatAddr } from "./runtime/mod.ts";
import { type ExchangeHost, type Handler, joined, Task } from "./task.ts";
import { now } from "./clock.ts";

/**
 * A request body must arrive at no less than this many bytes per second once
 * `channelTimeout` seconds have been spent waiting for it (slow-body floor).
 */
export const MIN_BODY_RATE = 1024;

/** Bytes a connection holds unused before it stops reading (see `#updateReading`). */
export const HOLD_BYTES = 64 * 1024;

const CONTINUE = new TextEncoder().encode("HTTP/1.1 100 Continue\r\n\r\n");

/**
 * What a buffer queued for the client costs in memory besides its bytes
 * (its object, and the buffer it views), counted toward
 * `outbufHighWatermark`: a stream of 1-byte chunks to a client that does not
 * read would otherwise queue 16 MiB of them, millions of objects.
 */
const BUFFER_COST = 128;

/**
 * `#tasks` while empty, so that an idle connection holds no array. Frozen: a
 * push that forgot to replace it throws.
 */
const NONE: never[] = Object.freeze([]) as never[];

/**
 * Emptied task lists, given back by connections that went idle. Most
 * keep-alive connections go idle between requests, and taking a list back
 * costs less than making one for every request (~1% of a hello-world
 * request's CPU on Bun).
 */
const spareLists: Task[][] = [];
const MAX_SPARE_LISTS = 1024;

// A channel's flags: the low bits of one field that also holds its slot
// (an idle connection's every field counts).
const CLOSED = 1;
/** No more requests are read: finish what is queued, then close. */
const CLOSING = 2;
const PAUSED = 4;
/**
 * More than HOLD_BYTES wait unused, or bytes came after the last request:
 * reading pauses until bytes are wanted.
 */
const OVERFED = 8;
const PEER_ENDED = 16;
const PUMPING = 32;
/** Output waits for the flush of the next macrotask (see `deferFlush`). */
const FLUSH_DUE = 64;
/**
 * Output is above `outbufHighWatermark`: no further request head is parsed
 * (and no more bytes read) until the client has taken it.
 */
const PARSE_HELD = 128;
/** The same, and `#tasks[0]` waits to be started until then. */
const START_HELD = 256;
/**
 * The last request this connection reads is in (a `Connection: close` or a
 * malformed one, read ahead): nothing after it is parsed. Unlike CLOSING,
 * the responses queued before it are sent as they would have been.
 */
const LAST_READ = 512;
/** A response was sent: the connection is kept alive (see `idle`). */
const SERVED = 1024;
/** `#bits` holds the flags below this, and `slot + 1` times this. */
const SLOT_UNIT = 2048;

/**
 * Channels whose output is flushed on the next macrotask: one timer serves
 * all of them (a timer costs microseconds on Deno).
 */
let deferred: Channel[] = [];
let deferredTimerSet = false;

function deferFlush(channel: Channel): void {
  deferred.push(channel);
  if (!deferredTimerSet) {
    deferredTimerSet = true;
    setTimeout(flushDeferred, 0);
  }
}

function flushDeferred(): void {
  deferredTimerSet = false;
  const list = deferred;
  deferred = [];
  for (let i = 0; i < list.length; i++) list[i].flushDue();
}

/** What a channel needs from its server. */
export interface ChannelOwner {
  readonly adj: Adjustments;
  readonly runner: TaskRunner;
  readonly handler: Handler;
  /** Parsers with the server's limits, shared by its connections. */
  readonly parsers: ParserPool;
  /** Called once when the connection is closed. */
  channelClosed(channel: Channel): void;
  /**
   * Connections wait at `connectionLimit` and none was idle to be closed
   * for them: a connection that becomes idle calls `channelIdle`.
   */
  readonly roomWanted: boolean;
  /** This connection became idle while `roomWanted`. */
  channelIdle(channel: Channel): void;
}

/** One HTTP/1.1 connection. */
export class Channel implements SocketHandler, ExchangeHost {
  /** The flags, and the slot (see `SLOT_UNIT`). */
  #bits = 0;

  /** Where the server lists this connection (see `SlotList`), or -1. */
  get slot(): number {
    return Math.floor(this.#bits / SLOT_UNIT) - 1;
  }
  set slot(slot: number) {
    this.#bits = (slot + 1) * SLOT_UNIT + this.#bits % SLOT_UNIT;
  }

  /** No further requests will be read: the current response is the last. */
  get closing(): boolean {
    return this.#is(CLOSING);
  }

  /** The connection is gone: nothing is written any more. */
  get closed(): boolean {
    return this.#is(CLOSED);
  }

  /**
   * Kept alive between requests: one was answered, and nothing is in
   * service, nor begun, nor to be closed. Such a connection may be closed
   * to make room for one that waits (see `closeIdle`).
   */
  get idle(): boolean {
    return (this.#bits & (CLOSED | CLOSING | LAST_READ | SERVED)) === SERVED &&
      this.#tasks.length === 0 && this.#reading === null &&
      (this.#parser === null || this.#parser.atRest);
  }

  /** Last time bytes moved in either direction (ms). */
  lastActivity = now();

  /**
   * Taken from the pool when bytes arrive, given back at rest: an idle
   * connection holds none. It also keeps when the head being received
   * started (a connection receiving one always holds a parser).
   */
  #parser: RequestParser | null = null;
  /** Requests parsed and not yet answered; tasks[0] is being served. */
  #tasks: Task[] = NONE;
  /** The task whose body the parser is reading, if any. */
  #reading: Task | null = null;
  /** Output since the last flush: one buffer (a response's usual share), or several. */
  #out: Uint8Array | Uint8Array[] | null = null;
  /**
   * The bytes in `#out`, plus `BUFFER_COST` for every buffer in it or handed
   * to the socket since the socket last had nothing queued: what this
   * connection's output costs beyond `socket.pendingBytes`.
   */
  #outCost = 0;

  constructor(private readonly owner: ChannelOwner, private readonly socket: Socket) {}

  // Read through, not copied: an idle connection's every field counts.
  get adj(): Adjustments {
    return this.owner.adj;
  }
  get runner(): TaskRunner {
    return this.owner.runner;
  }
  get handler(): Handler {
    return this.owner.handler;
  }
  get remoteAddr(): Addr {
    return this.socket.remoteAddr;
  }
  get localAddr(): Addr {
    return this.socket.localAddr;
  }

  // Arithmetic, not `|=` and `&=`, which would cut `#bits` to 32 bits.
  #is(flag: number): boolean {
    return (this.#bits & flag) !== 0;
  }

  #mark(flag: number): void {
    if (!this.#is(flag)) this.#bits += flag;
  }

  #unmark(flag: number): void {
    if (this.#is(flag)) this.#bits -= flag;
  }

  /** The deferred flush (see `deferFlush`), unless a flush came first. */
  flushDue(): void {
    if (this.#is(FLUSH_DUE)) this.flush();
  }

  /** Starts reading from the socket. */
  start(): void {
    this.socket.start(this);
  }

  // --- socket events -----------------------------------------------------

  // A bug of ours in a socket event must not escape to the runtime, which
  // on Node and Bun would end the process: see #internalError.

  onData(chunk: Uint8Array): void {
    try {
      this.#take(chunk);
    } catch (error) {
      this.#internalError(error);
    }
  }

  #take(chunk: Uint8Array): void {
    this.lastActivity = now();
    // After a close decision nothing more is processed, but the body of the
    // request being answered still is. Nor read: else the runtime would read
    // (and this drop) all a client sends while the response is made. The
    // close reads and discards again, for a while (see Socket.end).
    if ((this.#is(CLOSING) || this.#is(LAST_READ)) && this.#reading === null) {
      this.#mark(OVERFED);
      this.#updateReading();
      return;
    }
    const parser = this.#parser ??= this.owner.parsers.take();
    if (
      this.#tasks.length === 0 && this.#reading === null && parser.headStartedAt === 0 &&
      !this.#is(PARSE_HELD) // then we, not the client, hold the head up
    ) {
      parser.headStartedAt = this.lastActivity; // the head clock starts at its first byte
    }
    parser.push(chunk);
    this.#pump();
  }

  onEnd(): void {
    // The client sent all it will send. Requests received before its FIN are
    // still answered, in order; then the connection closes. Their apps are
    // told it left (see Task.clientLeft).
    this.#mark(PEER_ENDED);
    try {
      for (const task of this.#tasks) task.clientLeft();
      this.#pump();
      this.#maybeFinish();
    } catch (error) {
      this.#internalError(error);
    }
  }

  onSent(): void {
    // A client that reads slowly but steadily is not one that stopped reading.
    this.lastActivity = now();
  }

  onDrain(): void {
    try {
      this.#drained();
    } catch (error) {
      this.#internalError(error);
    }
  }

  #drained(): void {
    this.lastActivity = now();
    // Only the task being served writes.
    if (this.#out === null) this.#outCost = 0;
    this.#tasks[0]?.outputDrained();
    if (this.#is(START_HELD)) {
      this.#unmark(START_HELD);
      this.#startNext();
    }
    if (this.#is(PARSE_HELD)) {
      this.#unmark(PARSE_HELD);
      // A head still incomplete is timed from now: until now it was not read.
      if (this.#parser !== null) this.#parser.headStartedAt = 0;
      this.#pump();
      this.#updateReading(); // which #pump skips when it holds no parser
    }
    this.#maybeFinish();
  }

  onClose(error?: Error): void {
    if (this.#is(CLOSED)) return;
    this.#mark(CLOSED);
    if (error && this.adj.logSocketErrors) {
      this.adj.logger.warn(`Socket error on ${formatAddr(this.remoteAddr)}: ${error.message}`);
    }
    for (const task of this.#tasks) task.abort();
    this.#reading?.abort();
    this.#tasks = NONE;
    this.#reading = null;
    this.#out = null;
    this.#outCost = 0;
    this.#parser = null;
    this.owner.channelClosed(this);
  }

  // --- ExchangeHost: what tasks call ---------------------------------------

  write(bytes: Uint8Array): void {
    if (this.#is(CLOSED)) return;
    this.#outCost += bytes.byteLength + BUFFER_COST;
    const out = this.#out;
    if (out === null) this.#out = bytes;
    else if (out instanceof Uint8Array) this.#out = [out, bytes];
    else out.push(bytes);
  }

  flush(): void {
    this.#unmark(FLUSH_DUE);
    const out = this.#out;
    if (out === null || this.#is(CLOSED)) return;
    this.#out = null;
    this.lastActivity = now();
    if (out instanceof Uint8Array) {
      this.#outCost -= out.byteLength;
      return this.socket.write(out);
    }
    // The socket coalesces small buffers into one send and passes large ones
    // as they are.
    for (let i = 0; i < out.length; i++) {
      this.#outCost -= out[i].byteLength;
      this.socket.write(out[i]);
    }
  }

  /**
   * More output waits for the client than `outbufHighWatermark` (counting
   * what its buffers cost): the body being streamed waits, and so do the
   * requests after it (else a client that pipelines requests for large
   * responses without reading them would have all of them answered into
   * memory).
   */
  get backedUp(): boolean {
    return !this.#is(CLOSED) &&
      this.socket.pendingBytes + this.#outCost > this.adj.outbufHighWatermark;
  }

  sendContinue(): void {
    if (this.#is(CLOSED)) return;
    this.flush();
    this.socket.write(CONTINUE);
  }

  wantBody(): void {
    const reading = this.#reading;
    if (reading !== null && reading.bodyWaitSince === 0) reading.bodyWaitSince = now();
    this.#pump();
  }

  // --- server maintenance ----------------------------------------------------

  /**
   * Closes the connection when it breaks a time rule: idle too long, a head
   * not complete within `channelTimeout`, a body that the app waits for with
   * no bytes for `channelTimeout` or slower than `MIN_BODY_RATE`, or a client
   * that stopped reading. Called by the server's timer.
   */
  checkTimeouts(now: number): void {
    if (this.#is(CLOSED)) return;
    const limit = this.adj.channelTimeout * 1000;
    const headStartedAt = this.#parser?.headStartedAt ?? 0;
    if (headStartedAt !== 0 && now - headStartedAt > limit) {
      return this.#timedOut("request head not complete within channelTimeout");
    }
    // Output still queued: not idle, the client stopped reading (said so below).
    if (
      this.#tasks.length === 0 && this.socket.pendingBytes === 0 && now - this.lastActivity > limit
    ) {
      return this.#timedOut("idle");
    }
    const reading = this.#reading;
    if (reading?.pullPending && reading.bodyWaitSince !== 0) {
      // Since the last body bytes (or the start of the wait): a body that
      // came in a burst and then stopped is not saved by its average rate.
      const stalled = now - reading.bodyWaitSince;
      if (stalled > limit) return this.#timedOut("no request body bytes within channelTimeout");
      const waited = reading.bodyWaitMs + stalled;
      if (waited > limit && (reading.bodyBytes * 1000) / waited < MIN_BODY_RATE) {
        return this.#timedOut("request body slower than the minimum rate");
      }
    }
    if (this.socket.pendingBytes > 0 && now - this.lastActivity > limit) {
      return this.#timedOut("client stopped reading");
    }
  }

  #timedOut(why: string): void {
    this.adj.logger.info(`Closing connection from ${formatAddr(this.remoteAddr)}: ${why}`);
    this.socket.destroy();
  }

  /**
   * Graceful shutdown: stop reading new requests; close now if idle,
   * otherwise after the queued responses.
   */
  shutdown(): void {
    this.#mark(CLOSING);
    if (this.#tasks.length === 0) {
      this.flush();
      this.socket.end(0);
    }
  }

  /** Closes an idle connection to make room for one that waits at `connectionLimit`. */
  closeIdle(): void {
    this.adj.logger.info(
      `Closing connection from ${
        formatAddr(this.remoteAddr)
      }: idle, and a new connection waits at connectionLimit`,
    );
    this.shutdown();
  }

  /** Drops the connection at once. */
  destroy(): void {
    this.socket.destroy();
  }

  // --- the core loop ----------------------------------------------------------

  #pump(): void {
    if (this.#is(PUMPING) || this.#is(CLOSED)) return;
    const parser = this.#parser;
    if (parser === null) return;
    this.#mark(PUMPING);
    try {
      this.#parse(parser);
    } finally {
      this.#unmark(PUMPING);
    }
    if (this.#tasks.length === 0 && this.#reading === null && parser.atRest) {
      if (this.#tasks !== NONE && spareLists.length < MAX_SPARE_LISTS) {
        spareLists.push(this.#tasks);
      }
      this.#tasks = NONE;
      this.#parser = null;
      this.owner.parsers.give(parser);
    }
    // The responses this parse answered at once leave together (see #taskDone).
    if (!this.#is(FLUSH_DUE)) this.flush();
    this.#updateReading();
    this.#maybeFinish(); // put off while parsing (see there)
    // Answered, or its unread body drained: idle now, it may make room.
    if (this.owner.roomWanted && this.idle) this.owner.channelIdle(this);
  }

  #parse(parser: RequestParser): void {
    /** An event read past body events ready together (see `gatherBody`), taken next. */
    let held: ParseEvent | null = null;
    for (;;) {
      const reading = this.#reading;
      if (reading) {
        if (held === null && !reading.pullPending && !reading.draining) return;
        const event = held ?? parser.next();
        held = null;
        if (event === null) {
          if (this.#is(PEER_ENDED)) {
            // The rest of this body can no longer come.
            this.#reading = null;
            this.#mark(CLOSING);
            reading.failBody(parseError(400, "The client closed before the body was complete"));
          }
          return;
        }
        if (event.kind === "body") {
          let { data, whole } = event;
          if (!reading.draining) {
            const after = parser.next();
            if (after?.kind === "body") {
              [data, held] = gatherBody(parser, data, after.data);
              whole = true; // a new array of its own
            } else held = after;
          }
          reading.deliver(data, whole);
          bodyProgress(reading);
          if (reading.draining && reading.closeAfter) {
            // Too much unread body: stop reading it and close after the
            // response (#pump does, once this parse is over).
            this.#reading = null;
            this.#mark(CLOSING);
            return;
          }
        } else if (event.kind === "end") {
          reading.endBody();
          this.#reading = null;
        } else if (event.kind === "error") {
          this.#reading = null;
          reading.failBody(event.error);
          // A task that already answered closes the connection (#pump does);
          // else it answers the error.
          this.#mark(CLOSING);
          return;
        }
        continue;
      }
      if (this.#is(CLOSING) || this.#is(LAST_READ)) return;
      if (this.#tasks.length > this.adj.channelRequestLookahead) return;
      if (this.backedUp) {
        this.#mark(PARSE_HELD);
        parser.headStartedAt = 0; // we, not the client, hold the head up now
        return;
      }
      const event = parser.next();
      if (event === null) {
        if (parser.state === "idle") parser.headStartedAt = 0;
        else if (parser.headStartedAt === 0) parser.headStartedAt = now();
        return;
      }
      parser.headStartedAt = 0;
      if (event.kind === "head") {
        const task = new Task(this, event.head, null);
        if (task.bodyPending) this.#reading = task;
        this.#enqueue(task);
        // Nothing after a request that closes the connection is processed.
        if (!event.head.keepAlive) this.#mark(LAST_READ);
      } else if (event.kind === "error") {
        this.#rejectRequest(event.error);
        return;
      }
      // "end" right after a bodiless head: nothing to do.
    }
  }

  #rejectRequest(error: ParseError): void {
    this.#mark(LAST_READ);
    this.#enqueue(new Task(this, null, error));
  }

  #enqueue(task: Task): void {
    if (this.#is(PEER_ENDED)) task.clientLeft();
    if (this.#tasks === NONE) this.#tasks = spareLists.pop() ?? [];
    this.#tasks.push(task);
    if (this.#tasks.length === 1) this.#startNext();
  }

  /**
   * Starts the first queued task. One served within `run()` is done at once
   * (the next is then started by `#taskDone`, or by the parse loop that is
   * running); others are done when their promise settles.
   */
  #startNext(): void {
    const task = this.#tasks[0];
    if (!task) return;
    const pending = task.run();
    if (pending) pending.then(() => this.#done(task));
    else this.#done(task);
  }

  #done(task: Task): void {
    try {
      this.#taskDone(task);
    } catch (error) {
      this.#internalError(error);
    }
  }

  /** A bug of ours: logged, and the connection dropped (its state cannot be trusted). */
  #internalError(error: unknown): void {
    this.adj.logger.error("Internal error on a connection", error);
    this.socket.destroy();
  }

  #taskDone(task: Task): void {
    if (this.#is(CLOSED)) return;
    this.#mark(SERVED);
    // pop() where it does the same keeps the array's room for the next push.
    if (this.#tasks.length === 1) this.#tasks.pop();
    else this.#tasks.shift();
    if (task.responseBroken) {
      // A body delimited by the close, cut short: by a reset where the
      // runtime can send one, so that it does not look whole.
      this.flush();
      this.socket.destroy(true);
      return;
    }
    if (task.bodyPending) {
      // The app answered without reading all of the body.
      if (this.#reading === task) task.startDraining();
      if (task.closeAfter || this.#reading !== task) {
        this.#reading = null;
        task.closeAfter = true;
      }
    }
    if (task.closeAfter) {
      this.#mark(CLOSING);
      for (const dropped of this.#tasks) dropped.abort();
      this.#tasks = NONE;
      this.#reading = null;
      this.#maybeFinish();
      return;
    }
    if (this.#tasks.length > 0) {
      // Read ahead while this one ran; started once its output is taken.
      if (this.backedUp) this.#mark(START_HELD);
      else this.#startNext();
    }
    this.#pump(); // may parse and start the next request
    if (this.#tasks.length > 0) {
      // Batch pipelined responses: flush with the next one when it is done
      // already (its own turn comes within this macrotask), else on the next
      // macrotask (a timer costs microseconds on Deno: set only then).
      if (!this.#tasks[0].finished && !this.#is(FLUSH_DUE)) {
        this.#mark(FLUSH_DUE);
        deferFlush(this);
      }
      return;
    }
    // Within a parse, more requests may be answered at once: #pump sends
    // their responses together when it is done.
    if (!this.#is(PUMPING)) this.flush();
    this.#maybeFinish();
  }

  /**
   * Closes once closing was decided (or the client half-closed), nothing is
   * in service and output is handed over.
   */
  #maybeFinish(): void {
    if (this.#is(CLOSED) || !(this.#is(CLOSING) || this.#is(PEER_ENDED))) return;
    // Not while a parse is running (a request it just answered at once may
    // not be the last it holds: #pump checks again when it is done), nor
    // while requests are held back by the output (see onDrain).
    if (this.#tasks.length > 0 || this.#is(PUMPING)) return;
    if (this.#is(PARSE_HELD) && (this.#parser?.buffered ?? 0) > 0) return;
    this.flush();
    // No lingering for a peer that has sent everything; else the socket's default.
    this.socket.end(this.#is(PEER_ENDED) ? 0 : undefined);
  }

  /** The parser can use more bytes now. */
  #wantBytes(): boolean {
    const reading = this.#reading;
    return reading
      ? reading.pullPending || reading.draining
      : !this.#is(CLOSING) && !this.#is(LAST_READ) && !this.#is(PARSE_HELD) &&
        this.#tasks.length <= this.adj.channelRequestLookahead;
  }

  /**
   * Reads while the parser needs bytes, and while what it holds unused is
   * at most HOLD_BYTES: a read left pending notices a client that goes away
   * (its FIN or reset) while its request is in flight, also when the app
   * has not read the body, and the memory held stays bounded by HOLD_BYTES
   * and a read or two (the adapter may keep one outstanding while paused).
   * Pipelined requests cost no pause/resume, which are syscalls on some
   * runtimes.
   */
  #updateReading(): void {
    if (this.#is(CLOSED)) return;
    if (this.#wantBytes()) this.#unmark(OVERFED);
    else if ((this.#parser?.buffered ?? 0) > HOLD_BYTES) this.#mark(OVERFED);
    if (this.#is(OVERFED)) {
      if (!this.#is(PAUSED)) {
        this.#mark(PAUSED);
        this.socket.pause();
      }
    } else if (this.#is(PAUSED)) {
      this.#unmark(PAUSED);
      this.socket.resume();
    }
  }
}

/**
 * Joins `first`, `second` and the body events after them that the parser
 * has ready (a chunked body's chunks that came in one read) into one chunk
 * for the app: held one by one by an app that buffers the body, 1-byte
 * chunks cost it ~500 bytes each. Returns the chunk and the event that
 * followed (null: the parser needs more bytes).
 */
function gatherBody(
  parser: RequestParser,
  first: Uint8Array,
  second: Uint8Array,
): [Uint8Array, ParseEvent | null] {
  const parts = [first, second];
  let size = first.byteLength + second.byteLength;
  let event = parser.next();
  while (event?.kind === "body") {
    parts.push(event.data);
    size += event.data.byteLength;
    event = parser.next();
  }
  return [joined(parts, size), event];
}

/** Body bytes reached `task`: the time it waited for them counts toward the slow-body rule. */
function bodyProgress(task: Task): void {
  if (task.bodyWaitSince !== 0) {
    const time = now();
    task.bodyWaitMs += time - task.bodyWaitSince;
    task.bodyWaitSince = task.pullPending ? time : 0;
  }
}
