// Number formatting against Python's (tests/unit/test_js_fixtures.py: Decimal rounding on
// the exact binary value, halves away from zero, and Python's own thousands grouping).
import assert from "node:assert/strict";
import { test } from "node:test";
import { formatEpoch, formatNumber, formatPercent } from "../../static/js/format.js";
import { fixture, number } from "./fixtures.js";

const cases = fixture("format.json");

test("formatNumber writes a fixed number of decimals, and – for a missing number", () => {
  for (const { x, digits, text } of cases.numbers) assert.equal(formatNumber(number(x), digits), text, `${x} to ${digits}`);
});

test("formatPercent writes a share as a percentage with one decimal", () => {
  for (const { x, text } of cases.percents) assert.equal(formatPercent(number(x)), text, String(x));
});

test("formatEpoch writes at least six digits, grouped by thousands", () => {
  for (const { n, text } of cases.epochs) assert.equal(formatEpoch(n), text, String(n));
});
