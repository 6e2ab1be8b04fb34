/**
 * The task runner: caps how many app calls are in flight (`maxConcurrency`)
 * and queues the rest in arrival order.
 * @module
 */
import type { Logger } from "./adjustments.ts";

/** Starts app calls, at most `maxConcurrency` at a time, the rest FIFO. */
export class TaskRunner {
  #inFlight = 0;
  #queue: Array<() => void> = [];
  #lastWarning = 0;

  /** `maxConcurrency` may be `Infinity` (no cap: calls start at once). */
  constructor(readonly maxConcurrency: number, private readonly logger: Logger) {}

  /** App calls running now. */
  get inFlight(): number {
    return this.#inFlight;
  }

  /** Runs `call` when a slot is free; returns its outcome (a throw may be synchronous). */
  run<T>(call: () => T | Promise<T>): T | Promise<T> {
    // No cap: call at once, without the bookkeeping.
    if (this.maxConcurrency === Infinity) return call();
    if (this.#inFlight < this.maxConcurrency) return this.#start(call);
    return new Promise<T>((resolve, reject) => {
      this.#queue.push(() => this.#start(call).then(resolve, reject));
      this.#warnDepth();
    });
  }

  async #start<T>(call: () => T | Promise<T>): Promise<T> {
    this.#inFlight++;
    try {
      return await call();
    } finally {
      this.#inFlight--;
      this.#queue.shift()?.();
    }
  }

  // waitress logs this for every queued task; once a second is enough to see it.
  #warnDepth(): void {
    const now = Date.now();
    if (now - this.#lastWarning < 1000) return;
    this.#lastWarning = now;
    this.logger.warn(`Task queue depth is ${this.#queue.length}`);
  }
}
