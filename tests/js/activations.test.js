// The inspector's activation maths against NumPy's (app/nn/activations.py), with the
// names and parameters the page is sent (app/page_constants.py).
import assert from "node:assert/strict";
import { test } from "node:test";
import { KNOWN_ACTIVATIONS, activationTable } from "../../static/js/activations.js";
import { fixture } from "./fixtures.js";

const { constants, z, f: expected } = fixture("activations.json");
const table = activationTable(constants.activations, constants.activation_params);

test("the page can plot every activation the server offers, and knows no others", () => {
  assert.deepEqual([...table.keys()], constants.activations.map((a) => a.name));
  assert.deepEqual([...KNOWN_ACTIVATIONS].sort(), constants.activations.map((a) => a.name).sort());
});

test("each activation's formula text is the server's", () => {
  for (const { name, formula } of constants.activations) assert.equal(table.get(name).formula, formula);
});

for (const name of Object.keys(expected)) {
  test(`f(z) of ${name} agrees with NumPy`, () => {
    const { f } = table.get(name);
    z.forEach((v, k) => {
      const want = expected[name][k];
      // Different libm: allow a few units in the last place, nothing visible.
      assert.ok(Math.abs(f(v) - want) <= 1e-12 * Math.max(1, Math.abs(want)), `${name}(${v}) = ${f(v)}, NumPy ${want}`);
    });
  });
}
