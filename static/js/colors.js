// Colour scales. Lookup tables (256 entries, RGBA packed little-endian for ImageData)
// are built once; heatmap bytes index them directly.
//   diverging: byte 0 → −1 (orange), 127.5 → 0 (near-white), 255 → +1 (blue), as the peer does.
//   classes:   Okabe–Ito colours, distinguishable with colour-blindness; class 0 orange,
//              class 1 blue to match the diverging scale for two classes.
// Palettes. "present" is for projectors: darker, higher-contrast ends (Okabe–Ito
// vermillion and blue) and a white middle. Arrays are changed in place by setPalette so
// every importer sees the switch.
const PALETTES = {
  normal: { negative: [245, 147, 34], neutral: [232, 234, 235], positive: [8, 119, 189] },
  present: { negative: [213, 94, 0], neutral: [255, 255, 255], positive: [0, 90, 181] },
};
export const NEGATIVE = [...PALETTES.normal.negative];
export const NEUTRAL = [...PALETTES.normal.neutral];
export const POSITIVE = [...PALETTES.normal.positive];
export const CLASS_COLORS = [
  [245, 147, 34], [8, 119, 189], [0, 158, 115], [204, 121, 167],
  [86, 180, 233], [213, 94, 0], [240, 228, 66], [110, 110, 110], [0, 114, 178], [150, 80, 30],
];

const mix = (a, b, s) => a.map((v, i) => Math.round(v + (b[i] - v) * s));
const pack = ([r, g, b], a = 255) => ((a << 24) | (b << 16) | (g << 8) | r) >>> 0;

function buildLut(fn) {
  const lut = new Uint32Array(256);
  for (let k = 0; k < 256; k++) lut[k] = pack(fn(k));
  return lut;
}

// v in [−1, 1] → colour on the diverging scale.
export function diverging(v) {
  const s = Math.max(-1, Math.min(1, v));
  return s < 0 ? mix(NEUTRAL, NEGATIVE, -s) : mix(NEUTRAL, POSITIVE, s);
}
export const DIVERGING_LUT = buildLut((k) => diverging(k / 127.5 - 1));

export function setPalette(name) {
  const p = PALETTES[name] || PALETTES.normal;
  NEGATIVE.splice(0, 3, ...p.negative);
  NEUTRAL.splice(0, 3, ...p.neutral);
  POSITIVE.splice(0, 3, ...p.positive);
  CLASS_COLORS[0] = [...p.negative];
  CLASS_COLORS[1] = [...p.positive];
  DIVERGING_LUT.set(buildLut((k) => diverging(k / 127.5 - 1)));
  classLuts.clear();
  rebuildStrokes();
}

const classLuts = new Map();
// Probability p = byte/127.5 − 1 in [0, 1] → white … class colour.
export function classLut(k) {
  if (!classLuts.has(k)) {
    const c = CLASS_COLORS[k % CLASS_COLORS.length];
    classLuts.set(k, buildLut((b) => mix(NEUTRAL, c, Math.max(0, b / 127.5 - 1))));
  }
  return classLuts.get(k);
}

export const css = ([r, g, b], a = 1) => (a === 1 ? `rgb(${r},${g},${b})` : `rgba(${r},${g},${b},${a})`);

// 65 precomputed stroke colours for links, so a frame allocates no strings. Links start
// from a mid grey (not the near-white neutral) so weak links stay visible on white.
const STEPS = 32;
const LINK_ZERO = [200, 204, 210];
const linkColor = (v) => (v < 0 ? mix(LINK_ZERO, NEGATIVE, Math.sqrt(-v)) : mix(LINK_ZERO, POSITIVE, Math.sqrt(v)));
const strokes = [];
function rebuildStrokes() {
  strokes.length = 0;
  for (let k = 0; k <= 2 * STEPS; k++) strokes.push(css(linkColor((k - STEPS) / STEPS)));
}
rebuildStrokes();
export function divergingCss(v) {
  const k = Math.round(Math.max(-1, Math.min(1, v)) * STEPS) + STEPS;
  return strokes[k];
}
