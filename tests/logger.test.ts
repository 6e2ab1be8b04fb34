// The default logger writes errors the same way on every runtime.
import { test } from "node:test";
import assert from "node:assert/strict";
import { asText, consoleLogger, guardLogger, type Logger } from "../src/logger.ts";

test("asText: an Error becomes its stack with its causes; anything else is left as it is", () => {
  const inner = new TypeError("inner");
  const outer = new Error("outer", { cause: inner });
  const text = asText(outer) as string;
  assert.equal(typeof text, "string");
  assert.ok(text.startsWith("Error: outer\n"), text);
  assert.ok(text.includes("\nCaused by TypeError: inner"), text);
  assert.equal(asText("plain"), "plain");
  const object = { a: 1 };
  assert.equal(asText(object), object);
  const bare = new Error("bare");
  bare.stack = "";
  assert.equal(asText(bare), "Error: bare");
  assert.ok((asText(new Error("x", { cause: 42 })) as string).endsWith("\nCaused by 42"));
  const a = new Error("a");
  const b = new Error("b", { cause: a });
  (a as { cause?: unknown }).cause = b; // a cycle ends, at a bounded depth
  assert.equal((asText(a) as string).split("Caused by").length, 8);
});

test("consoleLogger hands the console text, not Error objects (Bun would print source lines)", () => {
  const seen: unknown[][] = [];
  const original = console.error;
  console.error = (...args: unknown[]) => void seen.push(args);
  try {
    consoleLogger.error("Exception while serving GET /", new Error("boom"));
  } finally {
    console.error = original;
  }
  assert.equal(seen.length, 1);
  assert.equal(seen[0][0], "Exception while serving GET /");
  assert.equal(typeof seen[0][1], "string");
  assert.ok((seen[0][1] as string).startsWith("Error: boom\n"));
});

/**
 * Runs `body` with console.info/warn/error recorded instead of printed, or
 * replaced by `replace` when given.
 */
async function withConsole(
  body: (seen: string[]) => Promise<void> | void,
  replace?: (...args: unknown[]) => void,
): Promise<void> {
  const seen: string[] = [];
  const saved = { info: console.info, warn: console.warn, error: console.error };
  for (const level of ["info", "warn", "error"] as const) {
    console[level] = replace ??
      ((...args: unknown[]) => void seen.push(`${level}: ${args.map(String).join(" ")}`));
  }
  try {
    await body(seen);
  } finally {
    Object.assign(console, saved);
  }
}

/** A logger whose every level throws. */
function brokenLogger(): Logger {
  return {
    info() {
      throw new Error("info broke");
    },
    warn() {
      throw new Error("warn broke");
    },
    error() {
      throw new Error("error broke");
    },
  };
}

test("guardLogger: a logger that throws never throws to the server; its lines go to the console", async () => {
  await withConsole((seen) => {
    const broken = brokenLogger();
    const safe = guardLogger(broken);
    assert.equal(guardLogger(broken), safe, "one guard per logger (warnOnce counts per logger)");
    safe.error("first", 1);
    safe.info("second");
    assert.equal(seen.length, 3, seen.join("\n"));
    assert.match(
      seen[0],
      /^error: The logger's error\(\) failed; logging to the console instead: .*error broke/,
    );
    assert.equal(seen[1], "error: first 1");
    assert.equal(seen[2], "info: second", "the failure is reported once");
  });
});

test("guardLogger: when the console throws too, the call still returns quietly", async () => {
  let tries = 0;
  await withConsole(() => {
    const safe = guardLogger(brokenLogger());
    safe.warn("first");
    safe.info("second");
  }, () => {
    tries++;
    throw new Error("console broke");
  });
  assert.equal(
    tries,
    2,
    "the failure report failed, and with it that call's line; then the next line",
  );
});

test("guardLogger: an async logger whose promise rejects causes no unhandled rejection", async () => {
  await withConsole(async (seen) => {
    const safe = guardLogger({
      info: () => Promise.reject(new Error("async broke")) as unknown as void,
      warn: () => {},
      error: () => {},
    });
    safe.info("line");
    await new Promise((resolve) => setTimeout(resolve, 10));
    assert.equal(seen.length, 2, seen.join("\n"));
    assert.match(seen[0], /async broke/);
    assert.equal(seen[1], "info: line");
  });
});

test("guardLogger: a working logger gets every call, with its own `this`", () => {
  const lines: string[] = [];
  const logger = {
    prefix: "p",
    info(this: { prefix: string }, ...args: unknown[]) {
      lines.push(`${this.prefix} ${args.join(" ")}`);
    },
    warn() {},
    error() {},
  };
  guardLogger(logger).info("a", "b");
  assert.deepEqual(lines, ["p a b"]);
  assert.equal(guardLogger(consoleLogger), consoleLogger);
});
