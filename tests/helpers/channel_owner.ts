/**
 * A `ChannelOwner` for driving a `Channel` on an in-memory socket (tests and
 * `bench/channel.ts`): default options, a logger that only reports errors.
 * @module
 */
import { resolveOptions } from "../../src/adjustments.ts";
import type { ChannelOwner } from "../../src/channel.ts";
import { ParserPool } from "../../src/parser.ts";
import { TaskRunner } from "../../src/runner.ts";
import type { Handler } from "../../src/task.ts";

/** An owner serving `handler` with the default options. */
export function channelOwner(handler: Handler): ChannelOwner {
  const adj = resolveOptions({ logger: { info() {}, warn() {}, error: console.error } });
  return {
    adj,
    runner: new TaskRunner(adj.maxConcurrency, adj.logger),
    handler,
    parsers: new ParserPool(adj),
    channelClosed() {},
  };
}
