/**
 * A `ChannelOwner` for driving a `Channel` on an in-memory socket (tests and
 * `bench/channel.ts`): default options unless given, a logger that only
 * reports errors.
 * @module
 */
import { type Options, resolveOptions } from "../../src/adjustments.ts";
import type { ChannelOwner } from "../../src/channel.ts";
import { ParserPool } from "../../src/parser.ts";
import { TaskRunner } from "../../src/runner.ts";
import type { Handler } from "../../src/task.ts";

/** An owner serving `handler` with the default options, or these. */
export function channelOwner(handler: Handler, options: Options = {}): ChannelOwner {
  const adj = resolveOptions({
    logger: { info() {}, warn() {}, error: console.error },
    ...options,
  });
  return {
    adj,
    runner: new TaskRunner(adj.maxConcurrency, adj.logger),
    handler,
    parsers: new ParserPool(adj),
    channelClosed() {},
    roomWanted: false,
    channelIdle() {},
  };
}
