// The default logger writes errors the same way on every runtime.
import { test } from "node:test";
import assert from "node:assert/strict";
import { asText, consoleLogger } from "../src/logger.ts";

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
