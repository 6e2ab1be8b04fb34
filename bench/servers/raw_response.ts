/**
 * What the raw-TCP ceiling servers share: the fixed response and a scanner
 * that counts request heads (each ending in CRLF CRLF) across reads.
 * @module
 */

/** The fixed reply to every request head: the same status, type and body as `/` in app.ts. */
export const RESPONSE: Uint8Array = new TextEncoder().encode(
  "HTTP/1.1 200 OK\r\nContent-Type: text/plain;charset=UTF-8\r\nContent-Length: 12\r\n\r\nHello world\n",
);

// Replies for 1..CACHED heads in one read, built once: wrk pipelines 16 per
// write, and reads may split or merge those batches.
const CACHED = 64;
const batches: Uint8Array[] = [];

/** `count` copies of RESPONSE back to back, so pipelined heads get one write. */
export function responses(count: number): Uint8Array {
  if (count <= CACHED) {
    let batch = batches[count];
    if (!batch) {
      batch = new Uint8Array(RESPONSE.length * count);
      for (let i = 0; i < count; i++) batch.set(RESPONSE, i * RESPONSE.length);
      batches[count] = batch;
    }
    return batch;
  }
  const out = new Uint8Array(RESPONSE.length * count);
  for (let i = 0; i < count; i++) out.set(RESPONSE, i * RESPONSE.length);
  return out;
}

/**
 * Counts how many CRLF CRLF terminators `bytes` completes. `state` is how many
 * bytes of the terminator the previous read ended with (0–3), so a head split
 * across reads is still counted once; returns the new state in the low 2 bits
 * and the count above them.
 */
export function countHeads(bytes: Uint8Array, length: number, state: number): number {
  let matched = state;
  let heads = 0;
  for (let i = 0; i < length; i++) {
    const b = bytes[i];
    if (b === 13) matched = matched === 2 ? 3 : 1;
    else if (b === 10 && (matched === 1 || matched === 3)) {
      if (matched === 3) {
        heads++;
        matched = 0;
      } else matched = 2;
    } else matched = 0;
  }
  return heads * 4 + matched;
}
