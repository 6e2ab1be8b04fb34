// The per-turn clock: it stands still within a turn and never lags a new one.
import { test } from "node:test";
import assert from "node:assert/strict";
import { now } from "../src/clock.ts";

function spin(ms: number): void {
  const until = Date.now() + ms;
  while (Date.now() < until) { /* busy: the turn goes on */ }
}

test("now() stands still within a turn", () => {
  const first = now();
  spin(5);
  assert.equal(now(), first);
  assert.ok(Date.now() >= first + 5);
});

test("now() is read afresh after a microtask and after a timer", async () => {
  const first = now();
  spin(3);
  await null;
  const second = now();
  assert.ok(second >= first + 3, `${second} after ${first}`);
  spin(3);
  await new Promise((resolve) => setTimeout(resolve, 1));
  assert.ok(now() >= second + 3);
});

test("now() agrees with Date.now() at the start of a turn", async () => {
  await new Promise((resolve) => setTimeout(resolve, 0));
  const before = Date.now();
  const value = now();
  assert.ok(value >= before && value <= Date.now());
});
