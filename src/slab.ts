/**
 * Small byte arrays carved out of a shared slab instead of each getting its
 * own ArrayBuffer: on Deno allocating even a 12-byte buffer costs ~0.5 µs,
 * far more than copying a few hundred bytes. Response heads and small reads
 * come from here.
 * @module
 */

/**
 * A slab is dropped once full and freed once nothing carved from it is in
 * use: a small array kept alive (a response queued for a slow reader, a
 * partial request head) keeps its slab alive, so slabs stay small.
 */
const SLAB_SIZE = 16 * 1024;
/** Larger arrays get their own buffer: they would use up slabs too fast. */
const CARVE_LIMIT = SLAB_SIZE / 4;

let slab = new Uint8Array(SLAB_SIZE);
let used = 0;
/** Every slab made, so that bytes carved from one can be told apart. */
const slabs = new WeakSet<ArrayBufferLike>([slab.buffer]);

/** Whether `bytes` were carved from a shared slab (its buffer holds other bytes too). */
export function isShared(bytes: Uint8Array): boolean {
  return slabs.has(bytes.buffer);
}

/** `n` zeroed bytes for the caller alone: a view of the shared slab when small. */
export function allocate(n: number): Uint8Array {
  if (n > CARVE_LIMIT) return new Uint8Array(n);
  if (used + n > SLAB_SIZE) {
    slab = new Uint8Array(SLAB_SIZE);
    slabs.add(slab.buffer);
    used = 0;
  }
  const out = slab.subarray(used, used + n);
  used += n;
  return out;
}
