/**
 * Output batching for the runtime adapters: small buffers queued together
 * leave in one write, large ones as they are; and the large buffers only
 * the server holds, whose memory is given back once sent. Names no runtime.
 * @module
 */

/**
 * A buffer this large is written as it is (a write costs less than copying
 * it); smaller ones queued together are concatenated into writes of about
 * this size.
 */
export const SMALL_LIMIT = 16 * 1024;

/**
 * Large buffers that only the server holds (a body Bun hands over with
 * `bytes()`, a copy of its own), whose memory `release` gives back as soon
 * as they are sent or copied. Left to the garbage collector, that memory went
 * back to the system and was faulted in again: on Bun ~0.4 page faults and
 * ~10% of the CPU time of a 64 KiB response.
 */
const releasable = new WeakSet<Uint8Array>();

/** Marks `bytes` as held by the server alone: `release` may free them. */
export function markReleasable(bytes: Uint8Array): void {
  if (
    bytes.byteLength >= SMALL_LIMIT && bytes.byteOffset === 0 &&
    bytes.byteLength === bytes.buffer.byteLength
  ) {
    releasable.add(bytes);
  }
}

/**
 * Frees the memory of `bytes` now if they were marked with `markReleasable`
 * (detaching their buffer); they must not be used again.
 */
export function release(bytes: Uint8Array): void {
  if (bytes.byteLength < SMALL_LIMIT || !releasable.delete(bytes)) return;
  (bytes.buffer as ArrayBuffer & { transfer?(length: number): ArrayBuffer }).transfer?.(0);
}

/** See `OutputQueue.take`: where a large buffer goes in a scratch buffer. */
export const SCRATCH_LEAD = 4096;

/**
 * A FIFO of output buffers with a moving head, so that taking from the front
 * is O(1) and no array is shifted per write.
 */
export class OutputQueue {
  #items: Uint8Array[] = [];
  #head = 0;
  /** Bytes held in the queue. */
  bytes = 0;
  /** The last `take` returned a view of its scratch buffer. */
  usedScratch = false;

  /** Number of buffers queued. */
  get length(): number {
    return this.#items.length - this.#head;
  }

  /** Appends a buffer (empty buffers are ignored). */
  push(data: Uint8Array): void {
    if (data.byteLength === 0) return;
    this.#items.push(data);
    this.bytes += data.byteLength;
  }

  /** Puts back the unwritten tail of a buffer taken with `take`. */
  unshift(data: Uint8Array): void {
    if (data.byteLength === 0) return;
    if (this.#head > 0) this.#items[--this.#head] = data;
    else this.#items.unshift(data);
    this.bytes += data.byteLength;
  }

  /**
   * Removes and returns the next thing to write: one buffer as is when it is
   * large or alone, otherwise consecutive small ones (under `SMALL_LIMIT`)
   * concatenated until `SMALL_LIMIT` is reached, because each write call
   * costs far more than copying a few KiB. Returns `undefined` when empty.
   *
   * With `scratch` (at least `SCRATCH_LEAD` bytes), the small ones are
   * concatenated in it rather than in a new buffer, and small ones of at
   * most `SCRATCH_LEAD` bytes in all take the large buffer that follows
   * with them when it fits (a head and its 64 KiB body: one send), and the
   * small ones after it too while they fit. The large one is copied to
   * offset `SCRATCH_LEAD`, the small ones just before it, so that it keeps
   * the alignment it most likely has: copying to an address a few bytes
   * past the source's modulo 4 KiB is ~20 times slower on some CPUs (4K
   * aliasing; measured on Bun). `usedScratch` tells whether the result is a
   * view of `scratch`.
   */
  take(scratch?: Uint8Array): Uint8Array | undefined {
    const items = this.#items;
    const start = this.#head;
    if (start >= items.length) return undefined;
    let end = start + 1;
    let total = items[start].byteLength;
    while (total < SMALL_LIMIT && end < items.length && items[end].byteLength < SMALL_LIMIT) {
      total += items[end].byteLength;
      end++;
    }
    let at = 0; // where the result starts in scratch
    if (
      scratch !== undefined && total <= SCRATCH_LEAD && end < items.length &&
      items[end].byteLength <= scratch.byteLength - SCRATCH_LEAD
    ) {
      at = SCRATCH_LEAD - total;
      total += items[end].byteLength;
      end++;
      // And the small ones after it, while they fit (a chunk's closing CRLF).
      while (
        end < items.length && items[end].byteLength < SMALL_LIMIT &&
        at + total + items[end].byteLength <= scratch.byteLength
      ) {
        total += items[end].byteLength;
        end++;
      }
    }
    let out: Uint8Array;
    this.usedScratch = false;
    if (end === start + 1) {
      out = items[start];
    } else {
      if (scratch !== undefined && at + total <= scratch.byteLength) {
        out = scratch.subarray(at, at + total);
        this.usedScratch = true;
      } else {
        out = new Uint8Array(total);
      }
      let off = 0;
      for (let i = start; i < end; i++) {
        out.set(items[i], off);
        off += items[i].byteLength;
        release(items[i]);
      }
    }
    for (let i = start; i < end; i++) items[i] = EMPTY;
    this.#head = end;
    if (this.#head === items.length) {
      // pop() is inlined; setting length calls into the runtime.
      while (items.length > 0) items.pop();
      this.#head = 0;
    } else if (this.#head > 1024 && this.#head * 2 > items.length) {
      // Compact now and then so the array does not grow without bound.
      this.#items = items.slice(this.#head);
      this.#head = 0;
    }
    this.bytes -= total;
    return out;
  }

  /** Drops everything. */
  clear(): void {
    this.#items = [];
    this.#head = 0;
    this.bytes = 0;
  }
}

const EMPTY = new Uint8Array(0);
