/**
 * Unix socket files for the adapters that reach the file system through
 * `node:fs` (Bun and node:net).
 * @module
 */
import { lstatSync, unlinkSync } from "node:fs";

/** Removes `path` if it is a unix socket (a stale one); leaves anything else alone. */
export function removeIfSocket(path: string): void {
  try {
    if (lstatSync(path).isSocket()) unlinkSync(path);
  } catch { /* not there */ }
}
