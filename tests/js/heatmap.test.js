// The heatmap decoder against real frames: every byte of every map must come back as the
// Python side encoded it (tests/unit/test_js_fixtures.py catches those maps on the way in).
import assert from "node:assert/strict";
import { test } from "node:test";
import { decodeHeatmaps } from "../../static/js/heatmap.js";
import { fixture } from "./fixtures.js";

for (const c of fixture("heatmaps.json")) {
  test(`decodeHeatmaps returns the maps Python encoded (${c.case})`, async () => {
    const decoded = await decodeHeatmaps(c.heatmaps, c.units, c.problem);
    const want = c.expected;
    assert.equal(decoded.thumb, want.thumb);
    assert.equal(decoded.res, want.res);
    assert.deepEqual(decoded.thumbs.map((layer) => layer.length), c.units);
    decoded.thumbs.forEach((layer, l) => layer.forEach((map, j) => {
      assert.deepEqual(Array.from(map), want.thumbs[l][j], `thumbnail of layer ${l}, neuron ${j}`);
    }));
    assert.equal(decoded.maps.length, want.maps.length);
    decoded.maps.forEach((map, m) => assert.deepEqual(Array.from(map), want.maps[m], `output map ${m}`));
  });
}

test("a corrupted blob is refused, not decoded into wrong maps", async () => {
  const [c] = fixture("heatmaps.json");
  const data = c.heatmaps.data.slice(0, 40); // cut short: the deflate stream is incomplete
  await assert.rejects(decodeHeatmaps({ ...c.heatmaps, data }, c.units, c.problem));
});
