/**
 * The `Date` header value, formatted once per second rather than per response.
 * @module
 */

import { now } from "./clock.ts";

let cachedSecond = -1;
let cachedValue = "";

/** Returns the current time as an IMF-fixdate (RFC 9110 §5.6.7), cached per second. */
export function httpDate(): string {
  const second = Math.floor(now() / 1000);
  if (second !== cachedSecond) {
    cachedSecond = second;
    cachedValue = new Date(second * 1000).toUTCString();
  }
  return cachedValue;
}
