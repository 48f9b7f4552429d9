// The fixtures Python writes for these tests (tests/unit/test_js_fixtures.py), read from
// the directory in JS_FIXTURES. `make test-js` writes them and sets it.
import { readFileSync } from "node:fs";
import { join } from "node:path";

export function fixture(name) {
  const dir = process.env.JS_FIXTURES;
  if (!dir) throw new Error("JS_FIXTURES is not set: run `make test-js`, which writes the fixtures first");
  return JSON.parse(readFileSync(join(dir, name), "utf8"));
}

// JSON has no NaN or ∞: the fixtures spell them as strings.
export const number = (x) => (typeof x === "string" ? Number(x) : x);
