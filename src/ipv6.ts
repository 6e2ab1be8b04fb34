/**
 * IPv6 addresses in the one text form RFC 5952 recommends, which is how the
 * runtimes report a peer: so that an address an operator wrote another way
 * (`0:0:0:0:0:0:0:1`, `::0001`, upper case) still matches it.
 * @module
 */

/**
 * `address` (valid IPv6 text, see `isIPv6Address`; a `%zone` is kept as it
 * is) in RFC 5952's form: lower-case hex without leading zeros, the longest
 * run of two or more zero groups (the first of equal ones) as `::`, and an
 * IPv4-mapped address as `::ffff:` and its dotted quad.
 */
export function canonicalIPv6(address: string): string {
  const percent = address.indexOf("%");
  const zone = percent === -1 ? "" : address.slice(percent);
  const text = percent === -1 ? address : address.slice(0, percent);
  const gap = text.indexOf("::");
  const head = gap === -1 ? groupsOf(text) : groupsOf(text.slice(0, gap));
  const tail = gap === -1 ? [] : groupsOf(text.slice(gap + 2));
  const groups = [...head, ...new Array<number>(8 - head.length - tail.length).fill(0), ...tail];
  if (groups.slice(0, 5).every((group) => group === 0) && groups[5] === 0xffff) {
    const quad = [groups[6] >> 8, groups[6] & 0xff, groups[7] >> 8, groups[7] & 0xff];
    return `::ffff:${quad.join(".")}${zone}`;
  }
  let runStart = -1;
  let runLength = 1; // a single zero group is not shortened
  for (let i = 0; i < 8;) {
    if (groups[i] !== 0) {
      i++;
      continue;
    }
    let end = i;
    while (end < 8 && groups[end] === 0) end++;
    if (end - i > runLength) [runStart, runLength] = [i, end - i];
    i = end;
  }
  const hex = groups.map((group) => group.toString(16));
  if (runStart === -1) return hex.join(":") + zone;
  const before = hex.slice(0, runStart).join(":");
  const after = hex.slice(runStart + runLength).join(":");
  return `${before}::${after}${zone}`;
}

/** The 16-bit groups of `part` (no `::` in it), a trailing dotted quad as two. */
function groupsOf(part: string): number[] {
  if (part === "") return [];
  const groups: number[] = [];
  for (const piece of part.split(":")) {
    if (piece.includes(".")) {
      const [a, b, c, d] = piece.split(".").map(Number);
      groups.push((a << 8) | b, (c << 8) | d);
    } else {
      groups.push(parseInt(piece, 16));
    }
  }
  return groups;
}
