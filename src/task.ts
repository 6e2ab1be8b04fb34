/**
 * One exchange: builds the `Request` and `RequestInfo`, calls the app through
 * the task runner, and writes its `Response` with the framing HTTP/1.1 asks
 * for. Sans-IO: it talks to its connection only through `ExchangeHost`.
 * @module
 */
import type { Adjustments } from "./adjustments.ts";
import { isIPv4Address, isIPv6Address, type ParseError, type RequestHead } from "./parser.ts";
import { applyProxyHeaders, equalsLower, type ProxyView } from "./proxy_headers.ts";
import {
  chunkPrefix,
  CRLF,
  encodeHead,
  errorBody,
  errorResponseBytes,
  type Framing,
  type HeadFacts,
  type HeadSpec,
  inspectHeaders,
  isFieldText,
  LAST_CHUNK,
  withType,
} from "./response.ts";
import type { TaskRunner } from "./runner.ts";
import { now } from "./clock.ts";
import { buildRequest, type RequestParts, UnsupportedMethodError } from "./runtime/request.ts";
import { SMALL_LIMIT } from "./runtime/output_queue.ts";
import { isShared } from "./slab.ts";
import { impliedType, responseFields, takeStaticBody } from "./runtime/response_parts.ts";
import type { Addr } from "./runtime/types.ts";

/** A fetch handler: the app. */
export type Handler = (request: Request, info: RequestInfo) => Response | Promise<Response>;

/** What the app gets besides the Request. */
export interface RequestInfo {
  /** The peer, or the client named by a trusted proxy (frozen). */
  remoteAddr: Addr;
  /** The address the connection arrived on (frozen: connections may share it). */
  localAddr: Addr;
  /** `urlScheme`, or the scheme a trusted proxy reported. */
  scheme: "http" | "https";
  /** The `urlPrefix` ("" when none). */
  scriptName: string;
  /** The raw path after `scriptName` (no query). */
  pathInfo: string;
  /** Aborted when the client goes away before the response is done. */
  signal: AbortSignal;
  /**
   * `remoteAddr` in the shape of Bun's `server.requestIP()`, or null when it
   * is not an IP address (a unix socket). Apps written for `Bun.serve` find
   * the client this way (Hono's `getConnInfo` from `hono/bun` calls it on
   * the fetch handler's second argument); the request argument is ignored.
   */
  requestIP(request?: Request): RequestIP | null;
}

/** What `RequestInfo.requestIP()` gives, as Bun's `SocketAddress`. */
export interface RequestIP {
  /** The IP address (no brackets for IPv6). */
  address: string;
  /** Which IP version the address is. */
  family: "IPv4" | "IPv6";
  /** The TCP port; 0 when a proxy header named the client without one. */
  port: number;
}

/**
 * `RequestInfo` whose signal is only made when asked for. The addresses are
 * plain properties, so that an app may copy them with `{ ...info }`.
 */
class Info implements RequestInfo {
  #task: Task;
  constructor(
    readonly remoteAddr: Addr,
    readonly localAddr: Addr,
    readonly scheme: "http" | "https",
    readonly scriptName: string,
    readonly pathInfo: string,
    task: Task,
  ) {
    this.#task = task;
  }

  get signal(): AbortSignal {
    return this.#task.signal;
  }

  requestIP(_request?: Request): RequestIP | null {
    const { hostname, port = 0 } = this.remoteAddr;
    if (hostname === undefined) return null;
    if (isIPv4Address(hostname)) return { address: hostname, family: "IPv4", port };
    if (isIPv6Address(hostname)) return { address: hostname, family: "IPv6", port };
    return null;
  }
}

/** What a task needs from its connection. */
export interface ExchangeHost {
  readonly adj: Adjustments;
  readonly runner: TaskRunner;
  readonly handler: Handler;
  readonly remoteAddr: Addr;
  readonly localAddr: Addr;
  /** The connection is gone (or being torn down): stop writing. */
  readonly closed: boolean;
  /** The connection closes after the responses already queued (e.g. server shutdown). */
  readonly closing: boolean;
  /** Queues response bytes (sent at the next flush). */
  write(bytes: Uint8Array): void;
  /** Sends queued bytes now. */
  flush(): void;
  /**
   * Queued output is above `outbufHighWatermark`: the task being served waits
   * for its `outputDrained` before writing more.
   */
  readonly backedUp: boolean;
  /** Writes `100 Continue` now. */
  sendContinue(): void;
  /** The task wants request-body bytes (a pull is pending). */
  wantBody(): void;
}

/** How much of an unread request body is read and discarded to keep the connection. */
export const DRAIN_LIMIT = 256 * 1024;

/** How much of a stream body, ready at once, is joined to be sent with a Content-Length. */
export const GATHER_LIMIT = 256 * 1024;
/** How many of its chunks at most (empty ones count for nothing toward the bytes). */
const GATHER_CHUNKS = 4096;

const EMPTY = new Uint8Array(0);

/**
 * The global `Response`, read once: Deno defines it as a lazy getter on the
 * global object, so naming it runs that getter at every use.
 */
const ResponseClass = Response;

/** What a queued app call gives when its client left before its turn. */
const SKIPPED = Symbol("skipped");

/** An error answered with a waitress error page (a ParseError is one). */
interface ErrorPage {
  status: number;
  detail: string;
  close: boolean;
}

/** One request/response exchange on a connection. */
export class Task {
  /** Close the connection after this response. */
  closeAfter: boolean;
  /** Request body state as the connection delivers it. */
  bodyState: "none" | "open" | "done" | "failed";
  /** A pull is waiting for bytes (the connection should read). */
  pullPending = false;
  /** The app's response is finished: further body bytes are discarded. */
  draining = false;
  /** Body bytes received so far (raw, decoded). */
  bodyBytes = 0;
  /** Time spent waiting for body bytes the app asked for (ms), for the slow-body rule. */
  bodyWaitMs = 0;
  /** Since when the app waits for body bytes (ms), or 0. */
  bodyWaitSince = 0;
  /** The response head has been queued. */
  responseStarted = false;
  /** The exchange is over: set before `run()` returns, or before its promise settles. */
  finished = false;
  /**
   * A response delimited by the close could not be completed: the connection
   * must be reset, not ended (a cut one with another framing just closes).
   */
  responseBroken = false;
  /** Made when the app first asks for a signal (most never do). */
  #abort: AbortController | null = null;
  /** Run when the client leaves: the Request's signal, where wired lazily. */
  #onLeft: Array<() => void> | null = null;
  /** The client sent its FIN or the connection closed: the app's signals are aborted. */
  #left = false;
  /** The connection closed: nothing more can be sent. */
  #gone = false;
  #bodyController: ReadableStreamDefaultController<Uint8Array> | null = null;
  #resolvePull: (() => void) | null = null;
  #continueSent = false;
  /** The app (or its response) has started reading the request body. */
  #bodyInUse = false;
  #reader: ReadableStreamDefaultReader<Uint8Array> | null = null;
  #forcedError: ParseError | null = null;
  /** `bodyBytes` when draining began. */
  #drainedFrom = 0;
  /** Resumes a stream body that waits for the connection's output to drain. */
  #wakeOnDrain: (() => void) | null = null;

  constructor(
    private readonly host: ExchangeHost,
    readonly head: RequestHead | null,
    readonly error: ParseError | null,
  ) {
    this.closeAfter = error !== null || !head!.keepAlive;
    this.bodyState = head && head.bodyKind !== "none" ? "open" : "none";
  }

  /** The body still has bytes to come from the client. */
  get bodyPending(): boolean {
    return this.bodyState === "open";
  }

  /**
   * Runs the exchange; never throws or rejects. Returns a promise only when
   * something must be waited for: an app that answers at once with a whole
   * body is served within this call.
   */
  run(): Promise<void> | void {
    let pending: Promise<void> | void = undefined;
    try {
      pending = this.error ? this.#writeError(this.error, null) : this.#serve(this.head!);
    } catch (error) {
      this.#internalError(error);
    }
    if (pending) return this.#finishLater(pending);
    this.finished = true;
  }

  async #finishLater(pending: Promise<void>): Promise<void> {
    try {
      await pending;
    } catch (error) {
      this.#internalError(error);
    }
    this.finished = true;
  }

  /** A bug of ours must not take the server down: log and drop the connection. */
  #internalError(error: unknown): void {
    this.host.adj.logger.error("Internal error while serving a request", error);
    this.closeAfter = true;
  }

  /** Aborted when the client leaves before the response is done. */
  get signal(): AbortSignal {
    if (this.#abort === null) {
      this.#abort = new AbortController();
      if (this.#left) this.#abort.abort(new Error("client disconnected"));
    }
    return this.#abort.signal;
  }

  /**
   * The client sent its FIN. It may only have finished sending (and still
   * read), so the response is still written; but a client that closed sends
   * the same FIN, and an app waiting on its signal (a long poll, a stream of
   * events) must learn that it may stop, as `Deno.serve`, `Bun.serve` and
   * `node:http` tell it.
   */
  clientLeft(): void {
    if (this.#left) return;
    this.#left = true;
    this.#abort?.abort(new Error("client disconnected"));
    const callbacks = this.#onLeft;
    this.#onLeft = null;
    if (callbacks) { for (const callback of callbacks) callback(); }
    // A response body still streaming is cut (see #pipe): waiting for its
    // next chunk, an event stream between events, would keep the
    // connection and the app's stream until a write failed, maybe never.
    if (this.responseStarted && this.#reader !== null) {
      this.#reader.cancel().catch(() => {});
      this.outputDrained();
    }
  }

  /** The connection went away: wake everything that waits on it. */
  abort(): void {
    this.closeAfter = true;
    this.#gone = true;
    this.clientLeft();
    this.failBody(new Error("client disconnected"));
    this.#reader?.cancel().catch(() => {});
    this.outputDrained();
  }

  /** The connection's output went below its high watermark (or the connection closed). */
  outputDrained(): void {
    const wake = this.#wakeOnDrain;
    this.#wakeOnDrain = null;
    wake?.();
  }

  // --- request body, fed by the connection ---------------------------------

  /** Body bytes from the parser; `whole`: see the parser's body event. */
  deliver(data: Uint8Array, whole: boolean): void {
    this.bodyBytes += data.byteLength;
    if (this.draining) {
      // Counted from the drain's start, as #drainIsFutile foresaw it.
      if (this.bodyBytes - this.#drainedFrom > DRAIN_LIMIT) this.closeAfter = true;
      return;
    }
    if (this.#bodyController) this.#bodyController.enqueue(ownBytes(data, whole));
    this.#settlePull();
  }

  /** The body is complete. */
  endBody(): void {
    if (this.bodyState !== "open") return;
    this.bodyState = "done";
    try {
      this.#bodyController?.close();
    } catch { /* already closed by a cancel */ }
    this.#settlePull();
  }

  /** The body cannot be completed (parse error, limit, disconnect). */
  failBody(reason: ParseError | Error): void {
    if (this.bodyState !== "open") return;
    this.bodyState = "failed";
    const error = reason instanceof Error ? reason : new Error(`${reason.status} ${reason.detail}`);
    try {
      this.#bodyController?.error(error);
    } catch { /* already closed */ }
    this.#settlePull();
    if (!(reason instanceof Error)) this.#forcedError = reason;
  }

  /** The connection stops waiting for this body: the response is done and the body unread. */
  startDraining(): void {
    this.draining = true;
    this.#drainedFrom = this.bodyBytes;
    this.pullPending = this.bodyState === "open";
    // The rest of the body must come as a body the app reads must: a client
    // that trickles it is closed by the slow-body rule, not kept for ever.
    if (this.pullPending && this.bodyWaitSince === 0) this.bodyWaitSince = now();
    if (this.#drainIsFutile()) this.closeAfter = true;
    try {
      this.#bodyController?.error(new Error("the response was already sent"));
    } catch { /* already closed */ }
  }

  /**
   * An unread body the client was not told to send (100-continue), or one
   * larger than DRAIN_LIMIT, is not worth reading: close instead.
   */
  #drainIsFutile(): boolean {
    const expectUnsent = this.head?.expectContinue && !this.#continueSent;
    const remaining = this.head?.bodyKind === "length"
      ? this.head.contentLength - this.bodyBytes
      : 0;
    return Boolean(expectUnsent) || remaining > DRAIN_LIMIT;
  }

  /**
   * Decides, before a head goes out, whether the request body left unread
   * forces a close, so that the head says so. (A response that streams the
   * request body back has read it by then.)
   */
  #closeForUnreadBody(): void {
    // A body the app began and cancelled is as unread as one it never touched.
    const unread = !this.#bodyInUse || this.#bodyController === null;
    if (this.bodyState === "open" && unread && this.#drainIsFutile()) {
      this.closeAfter = true;
    }
  }

  #settlePull(): void {
    this.pullPending = false;
    const resolve = this.#resolvePull;
    this.#resolvePull = null;
    resolve?.();
  }

  #bodyStream(): ReadableStream<Uint8Array> {
    return new ReadableStream<Uint8Array>({
      start: (controller) => {
        this.#bodyController = controller;
      },
      pull: () => {
        this.#bodyInUse = true;
        if (this.bodyState !== "open") return;
        // A 1xx only ever precedes the final response: once that has begun,
        // a 100 would land inside its body.
        if (this.head!.expectContinue && !this.#continueSent && !this.responseStarted) {
          this.#continueSent = true;
          this.host.sendContinue();
        }
        return new Promise<void>((resolve) => {
          this.#resolvePull = resolve;
          this.pullPending = true;
          this.host.wantBody();
        });
      },
      cancel: () => {
        this.#bodyController = null;
        this.#settlePull();
      },
    }, { highWaterMark: 0 });
  }

  // --- the exchange ---------------------------------------------------------

  #serve(head: RequestHead): Promise<void> | void {
    const { adj } = this.host;
    let view: ProxyView | null = null;
    if (head.proxyHeaders) {
      const proxied = applyProxyHeaders(adj, {
        scheme: adj.urlScheme,
        authority: head.authority || adj.serverName,
        remoteAddr: this.host.remoteAddr,
        headers: head.headers,
      }, adj.logger);
      if ("error" in proxied) {
        return this.#writeError(
          { status: 400, detail: proxied.error, close: true },
          head,
        );
      }
      view = proxied;
    }
    const scheme = view ? view.scheme : adj.urlScheme;

    const path = head.path;
    const query = path.indexOf("?");
    const rawPath = query < 0 ? path : path.slice(0, query);
    let pathInfo = rawPath;
    const prefix = adj.urlPrefix;
    if (prefix !== "") {
      if (rawPath === prefix) pathInfo = "";
      else if (rawPath.startsWith(prefix + "/") && !climbsOut(rawPath, prefix)) {
        pathInfo = rawPath.slice(prefix.length);
      } else {
        return this.#writeError(
          // The path is not echoed: error pages never repeat client bytes.
          { status: 404, detail: `The path is outside the URL prefix ${prefix}`, close: false },
          head,
        );
      }
    }

    let request: Request;
    try {
      request = this.#buildRequest(head, view, scheme);
    } catch (error) {
      return this.#writeError(
        error instanceof UnsupportedMethodError
          ? { status: 501, detail: error.message, close: true }
          : {
            status: 400,
            // The runtime's message quotes the URL: not echoed.
            detail: "Invalid request: its target and host do not make a valid URL",
            close: true,
          },
        head,
      );
    }
    const info = new Info(
      view ? view.remoteAddr : this.host.remoteAddr,
      this.host.localAddr,
      scheme,
      prefix,
      pathInfo,
      this,
    );

    let result: unknown;
    try {
      // With no cap (the default) no closure is made for the runner.
      const runner = this.host.runner;
      result = runner.maxConcurrency === Infinity
        ? this.#callApp(request, info)
        : runner.run(() => this.#callApp(request, info));
    } catch (error) {
      return this.#failed(error, request, head);
    }
    if (result instanceof ResponseClass) return this.#respond(result, request, head);
    return this.#awaitApp(result, request, head);
  }

  /** Calls the app, unless the client has gone (a request queued behind maxConcurrency). */
  #callApp(request: Request, info: RequestInfo): unknown {
    return this.#gone ? SKIPPED : this.host.handler(request, info);
  }

  async #awaitApp(pending: unknown, request: Request, head: RequestHead): Promise<void> {
    let result: unknown;
    try {
      result = await pending;
    } catch (error) {
      return this.#failed(error, request, head);
    }
    if (result === SKIPPED) return;
    const done = this.#respond(result, request, head);
    if (done) await done;
  }

  /** Checks what the app returned and writes it. */
  #respond(result: unknown, request: Request, head: RequestHead): Promise<void> | void {
    if (!(result instanceof ResponseClass)) {
      const error = new TypeError(`the app returned ${describe(result)}, not a Response`);
      return this.#failed(error, request, head);
    }
    if (result.status === 0 && result.type === "error") {
      return this.#failed(new TypeError("the app returned Response.error()"), request, head);
    }
    return this.#writeFinal(result, head);
  }

  async #failed(error: unknown, request: Request, head: RequestHead): Promise<void> {
    if (this.#clientCaused(error, head, "the app")) return;
    const response = await this.#appFailed(error, request, head);
    const done = this.#writeFinal(response, head);
    if (done) await done;
  }

  /** Writes the response, unless the request failed meanwhile (then its error page). */
  #writeFinal(response: Response, head: RequestHead): Promise<void> | void {
    if (this.#forcedError && !this.responseStarted) {
      response.body?.cancel().catch(() => {});
      return this.#writeError(this.#forcedError, head);
    }
    return this.#writeResponse(response, head);
  }

  #buildRequest(head: RequestHead, view: ProxyView | null, scheme: string): Request {
    const target = head.path === "*" ? "/" : head.path;
    const authority = view ? view.authority : head.authority || this.host.adj.serverName;
    const hasBody = this.bodyState === "open" && head.method !== "GET" && head.method !== "HEAD";
    if (this.bodyState === "open" && !hasBody) {
      // fetch's Request cannot carry a GET/HEAD body: the app never sees it.
      this.startDraining();
    }
    return buildRequest(
      new HeadParts(
        scheme,
        authority,
        target,
        head,
        view,
        hasBody ? this.#bodyStream() : null,
        this,
      ),
    );
  }

  /** Runs `callback` when the client leaves (at once if it has). */
  whenClientLeaves(callback: () => void): void {
    if (this.#left) callback();
    else (this.#onLeft ??= []).push(callback);
  }

  async #appFailed(error: unknown, request: Request, head: RequestHead): Promise<Response> {
    const { adj } = this.host;
    adj.logger.error(`Exception while serving ${head.method} ${head.target}`, error);
    if (adj.onError) {
      try {
        const custom = await adj.onError(error, request);
        if (custom instanceof Response) return custom;
        // Nothing returned is a way to decline; anything else is a mistake.
        if (custom !== undefined && custom !== null) {
          adj.logger.error(`onError returned ${describe(custom)}, not a Response: answering 500`);
        }
      } catch (hookError) {
        adj.logger.error("onError threw", hookError);
      }
    }
    const detail = adj.exposeTracebacks
      ? (error instanceof Error && error.stack ? error.stack : String(error))
      : "The server encountered an unexpected internal server error";
    this.closeAfter = true;
    return new Response(errorBody("Internal Server Error", detail), {
      status: 500,
      headers: { "content-type": "text/plain; charset=utf-8", connection: "close" },
    });
  }

  /** Writes a waitress error page; `head` is null when the request could not be parsed. */
  #writeError(error: ErrorPage, head: RequestHead | null): void {
    if (error.close) this.closeAfter = true;
    this.#closeForUnreadBody();
    if (this.host.closed) return;
    this.responseStarted = true;
    this.host.write(
      errorResponseBytes(
        head?.version ?? "1.1",
        error.status,
        error.detail,
        this.host.adj.ident,
        this.closeAfter,
        head?.method === "HEAD",
      ),
    );
  }

  #writeResponse(response: Response, head: RequestHead): Promise<void> | void {
    const host = this.host;
    if (host.closed) {
      response.body?.cancel().catch(() => {});
      return;
    }
    if (response.status < 200) {
      // Deno and Bun make a 101 Response (for their own upgrades), but sent
      // here it would tell the client the protocol switched while HTTP goes
      // on: a client then hangs or misreads the connection.
      response.body?.cancel().catch(() => {});
      return this.#badResponse(
        `The app returned status ${response.status}, which is not a final response (this server does not switch protocols)`,
        head,
      );
    }
    // The fields first: Bun fills in the content type of a Blob, form data
    // or URLSearchParams body only while the body is unread.
    let facts = inspectHeaders(responseFields(response));
    // A body given whole needs no stream (and `.body` would build one). It
    // may be a view of a shared buffer: nothing before the head is written
    // (which copies it) may wait. A body taken whole was unused (asking
    // first would make Deno materialise a body it holds lazily).
    const whole = takeStaticBody(response);
    if (whole !== undefined && !facts.hasType) {
      const type = impliedType(whole);
      if (type !== null) facts = withType(facts, type);
    }
    if (whole === undefined && response.bodyUsed) {
      return this.#badResponse("The app returned a used Response body", head);
    }
    const body = whole ? null : response.body;
    if (body?.locked) {
      return this.#badResponse("The app returned a used Response body", head);
    }
    const statusText = response.statusText;
    if (facts.invalid !== null || (statusText !== "" && !isFieldText(statusText))) {
      body?.cancel().catch(() => {});
      const what = facts.invalid === null
        ? "its status text"
        : `the value of its ${facts.invalid} header`;
      return this.#badResponse(
        `The app's response has a character that cannot be sent in ${what}`,
        head,
      );
    }
    if (facts.appClose || host.closing) this.closeAfter = true;
    if (body === null) return this.#send(response, head, facts, whole ?? null, null, null);
    return this.#readFirst(response, head, facts, body.getReader());
  }

  /**
   * Reads the first chunk of a stream body, and whether more follow: a body
   * that is complete at once is sent with a Content-Length. Without one from
   * the app, chunks that are ready at once are joined up to `GATHER_LIMIT`
   * (Bun streams a Blob in 16 KiB chunks, and apps often enqueue a page in
   * pieces), so a body that ends among them gets a Content-Length too.
   */
  async #readFirst(
    response: Response,
    head: RequestHead,
    facts: HeadFacts,
    reader: ReadableStreamDefaultReader<Uint8Array>,
  ): Promise<void> {
    this.#reader = reader;
    let first: Uint8Array | null = null;
    let next: Promise<ReadableStreamReadResult<Uint8Array>> | null = null;
    const firstRead = reader.read();
    if (
      !(await settlesSoon(firstRead)) &&
      (sendsNoBody(head.method, response.status) ||
        !(await settlesWithin(firstRead, HEAD_WAIT_MS)))
    ) {
      // Where no body goes out, a stream that is not ready at once is not
      // waited for (a HEAD to an event stream would wait for its first
      // event). Else the head goes out without waiting any longer for the
      // first chunk, which may be minutes away (an event stream): the client
      // (an EventSource, a proxy's read timeout) learns of the response now.
      firstRead.catch(() => {});
      if (this.host.closed) return this.#cancel(reader);
      return this.#send(response, head, facts, null, reader, firstRead);
    }
    try {
      const r = await firstRead;
      if (!r.done) {
        first = asBytes(r.value);
        next = reader.read();
        const limit = facts.appLength < 0
          ? Math.min(GATHER_LIMIT, this.host.adj.outbufHighWatermark)
          : 0;
        let gathered: Uint8Array[] | null = null;
        let size = first.byteLength;
        while (await settlesSoon(next)) {
          const n = await next;
          if (n.done) {
            next = null;
            break;
          }
          if (size >= limit || (gathered !== null && gathered.length >= GATHER_CHUNKS)) break;
          const chunk = asBytes(n.value);
          (gathered ??= [first]).push(chunk);
          size += chunk.byteLength;
          next = reader.read();
        }
        if (gathered !== null) first = joined(gathered, size);
      }
    } catch (error) {
      this.#cancel(reader);
      return this.#bodyFailed(error, head);
    }
    if (this.host.closed) return this.#cancel(reader);
    const done = this.#send(response, head, facts, first, reader, next);
    if (done) await done;
  }

  /**
   * Chooses the framing, then writes the head with `first` and, when `next`
   * (a pending read) says more follow, the rest of the stream.
   */
  #send(
    response: Response,
    head: RequestHead,
    facts: HeadFacts,
    first: Uint8Array | null,
    reader: ReadableStreamDefaultReader<Uint8Array> | null,
    next: Promise<ReadableStreamReadResult<Uint8Array>> | null,
  ): Promise<void> | void {
    const single = next === null;
    const status = response.status;
    const bodiless = sendsNoBody(head.method, status);
    let framing: Framing;
    let length = facts.appLength;
    if (bodiless) {
      framing = "none";
      // A body given to HEAD tells what GET would send; a null one (Hono's
      // answer to HEAD) does not, and a Content-Length: 0 would be a lie.
      // (Not for a 304, whose GET sends no Content-Length it was not given.)
      if (
        length < 0 && single && head.method === "HEAD" && status !== 304 &&
        (first || response.body !== null)
      ) {
        length = first ? first.byteLength : 0;
      }
      if (status === 204) length = -1;
      // 205 has no content, and says so (RFC 9110 §15.3.6), also to HEAD.
      if (status === 205) length = 0;
    } else if (length >= 0) {
      framing = "length";
    } else if (single) {
      framing = "length";
      length = first ? first.byteLength : 0;
    } else if (head.version === "1.1") {
      framing = "chunked";
    } else {
      framing = "close";
      this.closeAfter = true;
    }
    this.#closeForUnreadBody();

    const spec: HeadSpec = {
      version: head.version,
      status,
      statusText: response.statusText,
      facts,
      framing,
      length,
      close: this.closeAfter,
      keepAlive10: head.version === "1.0" && head.keepAlive,
      ident: this.host.adj.ident,
    };
    this.responseStarted = true;

    if (framing === "none") {
      if (first && status !== 304 && head.method !== "HEAD") {
        this.host.adj.logger.warn(
          `application-written content was ignored due to HTTP response that may not contain a message-body: (${status})`,
        );
      }
      this.host.write(encodeHead(spec));
      return this.#cancel(reader);
    }
    if (reader === null && framing === "length" && (first ? first.byteLength : 0) === length) {
      // A whole body of the announced length: nothing to count or end.
      return writeWithHead(this.host, spec, first ?? EMPTY);
    }
    const out = new BodyOut(this.host, spec);
    const more = out.emit(first ?? EMPTY, true);
    if (more && next !== null) {
      // The rest may be long in coming (server-sent events): what is here goes now.
      this.host.flush();
      return this.#pipe(out, reader!, next, head);
    }
    return this.#endBody(out, reader, more);
  }

  /**
   * Copies the rest of a stream body to the connection, as fast as the
   * client reads, until the client leaves: after its FIN (or before it) the
   * body is cut, as `Deno.serve` and `Bun.serve` cut it.
   */
  async #pipe(
    out: BodyOut,
    reader: ReadableStreamDefaultReader<Uint8Array>,
    next: Promise<ReadableStreamReadResult<Uint8Array>>,
    head: RequestHead,
  ): Promise<void> {
    const host = this.host;
    let more = true;
    try {
      while (more) {
        if (this.#left) return this.#cutShort(reader, out.spec.framing);
        const r = await next;
        // Its leaving may be what ended the wait (clientLeft cancels the read).
        if (this.#left) return this.#cutShort(reader, out.spec.framing);
        if (r.done) break;
        if (host.closed) return this.#cancel(reader);
        more = out.emit(asBytes(r.value), false);
        host.flush();
        if (!more) break;
        if (host.backedUp) await new Promise<void>((wake) => this.#wakeOnDrain = wake);
        if (host.closed) return this.#cancel(reader);
        next = reader.read();
      }
    } catch (error) {
      this.#cancel(reader);
      return this.#streamBroke(error, head, out.spec.framing);
    }
    this.#endBody(out, reader, more);
  }

  /** Ends the body's framing; `more` is false once the declared length was reached. */
  #endBody(
    out: BodyOut,
    reader: ReadableStreamDefaultReader<Uint8Array> | null,
    more: boolean,
  ): void {
    if (!more) this.#cancel(reader);
    if (!out.end()) {
      // A stream cut short by the client's going (its reader was cancelled) is no fault of the app's.
      if (!this.#gone) {
        this.host.adj.logger.warn(
          `application returned too few bytes (${out.sent}) for specified Content-Length (${out.spec.length})`,
        );
      }
      this.closeAfter = true;
    }
    this.#reader = null;
  }

  /** The app's response cannot be sent: logged, and a 500 instead. */
  #badResponse(detail: string, head: RequestHead): void {
    this.host.adj.logger.error(`${detail} for ${head.method} ${head.target}`);
    this.#writeError({ status: 500, detail, close: true }, head);
  }

  /**
   * Cancels the rest of a body, without waiting: a cancel settles when the
   * stream says so (a branch of a `tee()` only once the other branch is
   * cancelled too), and the response must not wait for it.
   */
  #cancel(reader: ReadableStreamDefaultReader<Uint8Array> | null): void {
    this.#reader = null;
    reader?.cancel().catch(() => {});
  }

  /**
   * Whether `error`, from the app or its response body, most likely follows
   * from the client's side, and is then not logged as the app's failure: the
   * request body broke first (cut short or malformed: its error page is
   * sent, if nothing was yet), or the connection closed first (the client
   * left, or a time rule closed it: no answer can be sent). One info line.
   */
  #clientCaused(error: unknown, head: RequestHead, failed: string): boolean {
    const forced = this.#forcedError;
    if (forced === null && !this.#gone) return false;
    if (forced !== null && !this.responseStarted && !this.#gone) {
      this.#writeError(forced, head);
      return true;
    }
    this.host.adj.logger.info(
      `${head.method} ${head.target}: ${failed} failed after ${
        this.#gone ? "its connection closed" : "its request body broke"
      } (${errorText(error)})`,
    );
    return true;
  }

  #bodyFailed(error: unknown, head: RequestHead): void {
    if (this.#clientCaused(error, head, "the response body")) return;
    this.host.adj.logger.error(
      `Exception while reading the response body of ${head.method} ${head.target}`,
      error,
    );
    this.#writeError(
      {
        status: 500,
        detail: this.host.adj.exposeTracebacks
          ? errorText(error)
          : "The server encountered an unexpected internal server error",
        close: true,
      },
      head,
    );
  }

  #streamBroke(error: unknown, head: RequestHead, framing: Framing): void {
    if (!this.#clientCaused(error, head, "the response body")) {
      this.host.adj.logger.error(
        `Response body of ${head.method} ${head.target} failed after the response started`,
        error,
      );
    }
    this.#cut(framing);
  }

  /** The client left while the body streamed: the rest is not sent. */
  #cutShort(reader: ReadableStreamDefaultReader<Uint8Array>, framing: Framing): void {
    this.#cancel(reader);
    this.#cut(framing);
  }

  /** Ends a response whose body was not completed: the connection closes. */
  #cut(framing: Framing): void {
    this.closeAfter = true;
    // A cut chunked or Content-Length body shows itself (no last chunk, too
    // few bytes): the usual close keeps what went before it, where a reset
    // would lose the sent bytes the kernel still holds (earlier pipelined
    // responses). One that the close ends looks whole but for a reset.
    this.responseBroken = framing === "close";
  }
}

/** Writes a response body with its framing, the head with the first bytes. */
class BodyOut {
  /** Body bytes written so far. */
  sent = 0;

  constructor(private readonly host: ExchangeHost, readonly spec: HeadSpec) {}

  /** Writes `chunk` (after the head when `withHead`); false once the declared length is reached. */
  emit(chunk: Uint8Array, withHead: boolean): boolean {
    const { host, spec } = this;
    let data = chunk;
    if (spec.framing === "length" && this.sent + data.byteLength > spec.length) {
      host.adj.logger.warn(
        `application-written content exceeded the number of bytes specified by Content-Length header (${spec.length})`,
      );
      data = data.subarray(0, spec.length - this.sent);
    }
    this.sent += data.byteLength;
    if (spec.framing === "chunked" && data.byteLength > 0) {
      // Each chunk complete with its CRLF: a client may hold a chunk back
      // until that comes (urllib3 does), and the next one may be minutes
      // away (an event stream).
      const prefix = chunkPrefix(data.byteLength);
      host.write(withHead ? encodeHead(spec, prefix) : prefix);
      host.write(data);
      host.write(CRLF);
    } else if (withHead) {
      writeWithHead(host, spec, data);
    } else if (data.byteLength > 0) {
      host.write(data);
    }
    return !(spec.framing === "length" && this.sent >= spec.length);
  }

  /** Ends the framing; false when fewer bytes came than the declared length. */
  end(): boolean {
    if (this.spec.framing === "chunked") {
      this.host.write(LAST_CHUNK);
    }
    return !(this.spec.framing === "length" && this.sent < this.spec.length);
  }
}

/** Whether a response sends no body, whatever it was given: to HEAD, or a 204, 205 or 304. */
function sendsNoBody(method: string, status: number): boolean {
  return method === "HEAD" || status === 204 || status === 205 || status === 304;
}

/** Writes the head that `spec` describes, then `data`. */
function writeWithHead(host: ExchangeHost, spec: HeadSpec, data: Uint8Array): void {
  if (data.byteLength >= SMALL_LIMIT) {
    // Large: written as it is after the head (a second write beats copying
    // it); small ones, shared scratch views included, are copied.
    host.write(encodeHead(spec));
    host.write(data);
  } else {
    host.write(encodeHead(spec, data));
  }
}

/**
 * Whether `path`, which starts with `prefix/`, leaves the prefix once its dot
 * segments are resolved (`/app/../x`, `/app/%2e%2e/x`), as they are in
 * `request.url`. Only a path with a segment that starts with `.` or `%2e`
 * is resolved to find out.
 */
function climbsOut(path: string, prefix: string): boolean {
  if (!path.includes("/.", prefix.length)) {
    const encoded = path.indexOf("/%2", prefix.length);
    if (encoded < 0 || !/\/%2e/i.test(path.slice(encoded))) return false;
  }
  const resolved = new URL(path, "http://h").pathname;
  const mount = new URL(prefix, "http://h").pathname;
  return resolved !== mount && !resolved.startsWith(mount + "/");
}

/**
 * Body bytes as the app gets them: plain Uint8Arrays whose buffer holds this
 * body's bytes alone (and zeros), and that the app may detach or change. A
 * read that was all body is handed on as it is (a runtime's Buffer subclass,
 * Bun's, as a plain view); anything else is copied: body bytes that share
 * their read with the head, framing or a pipelined request (which the
 * parser still reads), that the parser joined, or that were carved from the
 * shared slab (small Deno reads, whose buffer holds other connections' bytes).
 */
function ownBytes(data: Uint8Array, whole: boolean): Uint8Array {
  // A copy by the constructor: a Buffer's slice() makes a view.
  if (!whole || data.byteOffset !== 0) return new Uint8Array(data);
  // Bun's and Node's reads are Buffers of their own (never slab bytes).
  if (data.constructor !== Uint8Array) return new Uint8Array(data.buffer, 0, data.byteLength);
  return isShared(data) ? new Uint8Array(data) : data;
}

/**
 * How many microtask turns a read may take and still count as ready. A
 * stream piped through a TransformStream (an identity one, TextEncoderStream,
 * CompressionStream) or a FormData body needs up to ~10 on Bun or Deno
 * before its end is known: with 6, the same app's body got a Content-Length
 * on one runtime and chunked framing on the other.
 */
const SETTLE_TURNS = 16;

/**
 * How long a response whose body stream has nothing yet waits for its first
 * chunk before its head goes out anyway (ms): a chunk ready by then still
 * goes with the head, and a body complete with it still gets a Content-Length.
 */
export const HEAD_WAIT_MS = 100;

/** Resolves whether `promise` settles within `ms` milliseconds. */
function settlesWithin(promise: Promise<unknown>, ms: number): Promise<boolean> {
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve(false), ms);
    const settled = () => {
      clearTimeout(timer);
      resolve(true);
    };
    promise.then(settled, settled);
  });
}

/** Resolves whether `promise` settles within `SETTLE_TURNS` microtask turns (a body already complete). */
async function settlesSoon(promise: Promise<unknown>): Promise<boolean> {
  let settled = false;
  promise.then(() => (settled = true), () => (settled = true));
  for (let i = 0; i < SETTLE_TURNS && !settled; i++) await null;
  return settled;
}

/** `chunks` copied one after another into one array of `size` bytes. */
export function joined(chunks: Uint8Array[], size: number): Uint8Array {
  const out = new Uint8Array(size);
  let at = 0;
  for (const chunk of chunks) {
    out.set(chunk, at);
    at += chunk.byteLength;
  }
  return out;
}

function asBytes(value: unknown): Uint8Array {
  if (value instanceof Uint8Array) return value;
  throw new TypeError(`response body chunks must be Uint8Array, got ${describe(value)}`);
}

function describe(value: unknown): string {
  if (value === null) return "null";
  if (typeof value === "object") return value.constructor?.name ?? "an object";
  return typeof value;
}

function errorText(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/**
 * `list` with its Cookie field lines joined into the first by "; " (as
 * HTTP/2 asks of a server that passes them on, RFC 9113 §8.2.3), or `list`
 * itself when it has fewer than two. Bun's and Node's `Headers` join them so;
 * Deno's would join them with ", ", inside a cookie value.
 */
function joinedCookies(list: Array<[string, string]>): Array<[string, string]> {
  let cookies = 0;
  for (let i = 0; i < list.length; i++) if (isCookie(list[i][0])) cookies++;
  if (cookies < 2) return list;
  const out: Array<[string, string]> = [];
  let first: [string, string] | null = null;
  for (const [name, value] of list) {
    if (!isCookie(name)) out.push([name, value]);
    else if (first === null) out.push(first = [name, value]);
    else first[1] += "; " + value;
  }
  return out;
}

function isCookie(name: string): boolean {
  return name.length === 6 && equalsLower(name, "cookie");
}

/**
 * What the app's Request is built from: one object per request, its header
 * list and field text read from the head only when the builder asks.
 */
class HeadParts implements RequestParts {
  readonly method: string;
  constructor(
    readonly scheme: string,
    readonly authority: string,
    readonly target: string,
    private readonly head: RequestHead,
    private readonly view: ProxyView | null,
    readonly body: ReadableStream<Uint8Array> | null,
    private readonly task: Task,
  ) {
    this.method = head.method;
  }

  headers(): Array<[string, string]> {
    return joinedCookies(this.view ? this.view.headers : this.head.headers);
  }

  fields(): string | null {
    return this.view ? null : this.head.fields;
  }

  onCancel(abort: () => void): void {
    this.task.whenClientLeaves(abort);
  }
}
