import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "..", "..");
const FILE = join(ROOT, "test", "must-not-compile", "wrong-payloads.ts");

test("wrong payloads are compile-time errors, exactly on the lines that say so", () => {
  const tsc = join(ROOT, "node_modules", "typescript", "bin", "tsc");
  const project = join(ROOT, "test", "must-not-compile", "tsconfig.json");
  const run = spawnSync(process.execPath, [tsc, "-p", project], { cwd: ROOT, encoding: "utf8" });
  assert.notEqual(run.status, 0, "the file compiled, so wrong payloads would not be caught");
  const failing = new Set(
    [...run.stdout.matchAll(/wrong-payloads\.ts\((\d+),\d+\): error TS\d+/g)].map((m) => Number(m[1])),
  );
  const marked = new Set(
    readFileSync(FILE, "utf8")
      .split("\n")
      .flatMap((line, i) => (/\/\/ error:/.test(line) ? [i + 1] : [])),
  );
  assert.ok(marked.size >= 8);
  assert.deepEqual([...failing].sort((a, b) => a - b), [...marked].sort((a, b) => a - b), run.stdout);
});
