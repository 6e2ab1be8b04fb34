// OutputQueue: small buffers are merged into one write, large ones are
// passed through untouched (never copied), order is kept.
import { test } from "node:test";
import assert from "node:assert/strict";
import {
  markReleasable,
  OutputQueue,
  release,
  SCRATCH_LEAD,
  SMALL_LIMIT,
} from "../src/runtime/output_queue.ts";

const filled = (n: number, v: number) => new Uint8Array(n).fill(v);

test("small buffers are concatenated in order until SMALL_LIMIT is reached", () => {
  const q = new OutputQueue();
  for (let i = 0; i < 400; i++) q.push(filled(100, i & 0xff));
  assert.equal(q.bytes, 40_000);
  const first = q.take()!;
  assert.ok(first.byteLength >= SMALL_LIMIT && first.byteLength < SMALL_LIMIT + 100);
  assert.equal(first[0], 0);
  assert.equal(first[100], 1);
  let total = first.byteLength;
  for (let chunk = q.take(); chunk; chunk = q.take()) total += chunk.byteLength;
  assert.equal(total, 40_000);
  assert.equal(q.bytes, 0);
});

test("a large buffer is handed out as the same object, never merged", () => {
  const q = new OutputQueue();
  const head = filled(150, 1);
  const body = filled(SMALL_LIMIT, 2);
  const tail = filled(5, 3);
  q.push(head);
  q.push(body);
  q.push(tail);
  assert.equal(q.take(), head, "small before large goes alone");
  assert.equal(q.take(), body, "large is not copied");
  assert.equal(q.take(), tail);
  assert.equal(q.take(), undefined);
});

test("unshift puts a partly written tail back in front", () => {
  const q = new OutputQueue();
  q.push(filled(10, 1));
  q.push(filled(10, 2));
  const taken = q.take()!;
  assert.equal(taken.byteLength, 20);
  q.unshift(taken.subarray(15));
  assert.equal(q.bytes, 5);
  assert.deepEqual(q.take(), filled(5, 2));
});

test("unshift while more wait behind: the tail goes back in front of them; empty buffers are ignored", () => {
  const q = new OutputQueue();
  const a = filled(SMALL_LIMIT, 1);
  const b = filled(SMALL_LIMIT, 2);
  q.push(a);
  q.push(new Uint8Array(0));
  q.push(b);
  assert.equal(q.length, 2);
  assert.equal(q.take(), a);
  q.unshift(new Uint8Array(0));
  q.unshift(a.subarray(100));
  assert.equal(q.length, 2);
  assert.equal(q.bytes, 2 * SMALL_LIMIT - 100);
  assert.deepEqual(q.take(), a.subarray(100));
  assert.equal(q.take(), b);
  assert.equal(q.take(), undefined);
  assert.equal(q.bytes, 0);
});

test("with a scratch buffer, a head and the large body after it are merged into it", () => {
  const q = new OutputQueue();
  const scratch = new Uint8Array(SCRATCH_LEAD + 70_000);
  const head = filled(150, 1);
  const body = filled(65_536, 2);
  const next = filled(10_000, 3);
  q.push(head);
  q.push(body);
  q.push(next);
  const merged = q.take(scratch)!;
  assert.equal(merged.buffer, scratch.buffer, "merged in the scratch buffer");
  assert.ok(q.usedScratch);
  assert.equal(merged.byteLength, 150 + 65_536, "one large buffer at most");
  assert.equal(merged.byteOffset + 150, SCRATCH_LEAD, "the large one at SCRATCH_LEAD");
  assert.equal(merged[149], 1);
  assert.equal(merged[150], 2);
  assert.equal(q.take(scratch), next, "alone: handed out as it is");
  assert.ok(!q.usedScratch);
  assert.equal(q.take(scratch), undefined);
  assert.equal(q.bytes, 0);
});

test("with a scratch buffer, the small ones after the large one go along while they fit", () => {
  const q = new OutputQueue();
  const scratch = new Uint8Array(SCRATCH_LEAD + 70_000);
  const parts = [filled(6, 1), filled(65_536, 2), filled(2, 3), filled(7, 4), filled(20_000, 5)];
  for (const part of parts) q.push(part);
  const merged = q.take(scratch)!;
  assert.equal(merged.buffer, scratch.buffer);
  assert.equal(merged.byteLength, 6 + 65_536 + 2 + 7, "a chunk's CRLF and the next size line");
  assert.deepEqual([merged[5], merged[6], merged[65_542], merged[65_544]], [1, 2, 3, 4]);
  assert.equal(q.take(scratch), parts[4], "a large one is not copied after another");
  assert.equal(q.bytes, 0);
});

test("with a scratch buffer, small ones are concatenated in it; a large one too big stays apart", () => {
  const q = new OutputQueue();
  const scratch = new Uint8Array(SCRATCH_LEAD + 1000);
  for (let i = 0; i < 3; i++) q.push(filled(100, i + 1));
  const big = filled(SMALL_LIMIT, 9);
  q.push(big);
  const merged = q.take(scratch)!;
  assert.ok(q.usedScratch);
  assert.deepEqual(
    [...merged.subarray(0, 300)].filter((b, i) => b !== Math.floor(i / 100) + 1),
    [],
  );
  assert.equal(merged.byteLength, 300, "the large one does not fit after SCRATCH_LEAD");
  assert.equal(q.take(scratch), big);
});

/** `release` frees by `ArrayBuffer.prototype.transfer`, which Node 20 lacks. */
const canFree = "transfer" in ArrayBuffer.prototype;

test("a marked large buffer merged into scratch is freed; unmarked and small ones are not", () => {
  const q = new OutputQueue();
  const scratch = new Uint8Array(SCRATCH_LEAD + 70_000);
  const marked = filled(65_536, 2);
  markReleasable(marked);
  q.push(filled(150, 1));
  q.push(marked);
  const merged = q.take(scratch)!;
  assert.equal(merged[150], 2, "copied before it was freed");
  assert.equal(marked.byteLength, canFree ? 0 : 65_536, "its buffer was detached");

  const own = filled(65_536, 3);
  q.push(filled(150, 1));
  q.push(own);
  q.take(scratch);
  assert.equal(own.byteLength, 65_536, "a buffer not marked is the app's: left alone");
});

test("markReleasable ignores small buffers and views of a larger buffer", () => {
  const small = filled(100, 1);
  markReleasable(small);
  release(small);
  assert.equal(small.byteLength, 100);
  const view = new Uint8Array(2 * SMALL_LIMIT).subarray(0, SMALL_LIMIT);
  markReleasable(view);
  release(view);
  assert.equal(view.byteLength, SMALL_LIMIT, "the rest of its buffer may be in use");
  const whole = filled(SMALL_LIMIT, 1);
  markReleasable(whole);
  release(whole);
  assert.equal(whole.byteLength, canFree ? 0 : SMALL_LIMIT);
  release(whole); // twice is harmless
});
