import { test } from "node:test";
import assert from "node:assert/strict";
import { VERSION } from "../mod.ts";

test("the package has a version", () => {
  assert.match(VERSION, /^\d+\.\d+\.\d+$/);
});
