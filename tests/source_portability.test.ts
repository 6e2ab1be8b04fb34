// What the source may rely on across the runtime versions it supports.
// Deno's types have no global `setImmediate` before 2.8 (and Deno has none
// at run time before 2.5), and Deno type-checks every adapter, the Bun and
// Node ones included: so it is imported from node:timers wherever it is used.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";

/** Every .ts file under `dir`. */
function sources(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) return sources(path);
    return entry.name.endsWith(".ts") ? [path] : [];
  });
}

test("setImmediate and clearImmediate are imported from node:timers, never the global", () => {
  const files = [...sources("src"), ...sources("cli"), "mod.ts"];
  assert.ok(files.includes(join("src", "runtime", "node.ts")), "run from the repository root");
  for (const file of files) {
    // Comments left out: they may name the global.
    const code = readFileSync(file, "utf8").replace(/\/\*[^]*?\*\//g, "").replace(/\/\/.*$/gm, "");
    for (const name of ["setImmediate", "clearImmediate"]) {
      if (!new RegExp(`\\b${name}\\(`).test(code)) continue;
      assert.match(
        code,
        new RegExp(`import \\{[^}]*\\b${name}\\b[^}]*\\} from "node:timers"`),
        `${file} uses the global ${name}`,
      );
    }
  }
});
