/**
 * How the runtime layer words addresses and failures: `127.0.0.1:80`,
 * `[::1]:80`, `unix:/p`; a bind error naming its address; any thrown value
 * as an Error.
 * @module
 */

import type { Addr, ListenSpec } from "./types.ts";

/** Formats an address for messages: `127.0.0.1:80`, `[::1]:80`, `unix:/p`. */
export function formatAddr(addr: Addr | ListenSpec): string {
  if (addr.transport === "unix") return `unix:${addr.path ?? ""}`;
  const host = addr.hostname ?? "";
  return host.includes(":") ? `[${host}]:${addr.port}` : `${host}:${addr.port}`;
}

/**
 * Wraps a bind failure in an Error naming the address, keeping the original
 * as `cause`. `reason` is derived from the error's code or class name.
 */
export function bindError(spec: ListenSpec, cause: unknown): Error {
  const e = cause as { code?: unknown; name?: unknown; message?: unknown } | undefined;
  const code = typeof e?.code === "string" ? e.code : "";
  const name = typeof e?.name === "string" ? e.name : "";
  let reason: string;
  if (code === "EADDRINUSE" || name === "AddrInUse") reason = "address already in use";
  else if (code === "EACCES" || code === "EPERM" || name === "PermissionDenied") {
    reason = "permission denied";
  } else if (name === "NotCapable") reason = "permission denied (run with --allow-net)";
  else if (code === "EADDRNOTAVAIL" || name === "AddrNotAvailable") {
    reason = "address not available";
  } else if (code === "ENOENT" || name === "NotFound") reason = "no such file or directory";
  else reason = typeof e?.message === "string" ? e.message : String(cause);
  return new Error(`cannot listen on ${formatAddr(spec)}: ${reason}`, { cause });
}

/** Normalises any thrown value to an Error. */
export function toError(value: unknown): Error {
  return value instanceof Error ? value : new Error(String(value));
}
