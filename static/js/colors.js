// Every colour the page's scripts draw with comes from here, and every colour here comes
// from the constants block (app/page_constants.py owns the palettes). Lookup tables
// (256 entries, RGBA packed little-endian for ImageData) are built once; heatmap bytes
// index them directly.
//   diverging: byte 0 → −1 (negative), 127.5 → 0 (neutral), 255 → +1 (positive).
//   classes:   class 0 negative, class 1 positive (matching the diverging scale for two
//              classes), then Okabe–Ito colours, distinguishable with colour-blindness.
// setPalette switches between "normal" and "present" (projectors). The exported arrays
// change in place, so every importer sees the switch without importing again.
import { COLORS } from "./constants.js";

const PALETTES = COLORS.palettes;
export const NEGATIVE = [...PALETTES.normal.negative];
export const NEUTRAL = [...PALETTES.normal.neutral];
export const POSITIVE = [...PALETTES.normal.positive];
export const CLASS_COLORS = [NEGATIVE, POSITIVE, ...COLORS.more_classes].map((c) => [...c]);
export const TRAIN_EDGE = COLORS.train_edge; // outline of a training point
export const TEST_EDGE = COLORS.test_edge; // outline of a test point, and the probe's ring
export const PAPER = COLORS.paper; // an exported figure's background by default; a digit's blank
export const INK = COLORS.ink; // a digit's strokes

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

// A digit's pixel p in [0, 1]: paper … ink, as RGBA bytes for ImageData.
export const digitRgba = (p) => [...mix(PAPER, INK, Math.max(0, Math.min(1, p))), 255];

export const css = ([r, g, b], a = 1) => (a === 1 ? `rgb(${r},${g},${b})` : `rgba(${r},${g},${b},${a})`);

// The stylesheet's --neg and --pos (dataset tiles, loss box, timeline, inspector point)
// follow the palette too. Through the CSSOM: the CSP forbids style attributes, not this.
function applyToStylesheet() {
  const root = globalThis.document?.documentElement;
  root?.style.setProperty("--neg", css(NEGATIVE));
  root?.style.setProperty("--pos", css(POSITIVE));
}

export function setPalette(name) {
  const p = PALETTES[name] || PALETTES.normal;
  NEGATIVE.splice(0, 3, ...p.negative);
  NEUTRAL.splice(0, 3, ...p.neutral);
  POSITIVE.splice(0, 3, ...p.positive);
  CLASS_COLORS[0] = [...p.negative];
  CLASS_COLORS[1] = [...p.positive];
  DIVERGING_LUT.set(buildLut((k) => diverging(k / 127.5 - 1)));
  classLuts.clear();
  tints.clear();
  rebuildStrokes();
  applyToStylesheet();
}

const classLuts = new Map();
// Probability p = byte/127.5 − 1 in [0, 1] → neutral … class colour.
export function classLut(k) {
  if (!classLuts.has(k)) {
    const c = CLASS_COLORS[k % CLASS_COLORS.length];
    classLuts.set(k, buildLut((b) => mix(NEUTRAL, c, Math.max(0, b / 127.5 - 1))));
  }
  return classLuts.get(k);
}

// The output plot's background for class k: tinted toward the class colour by the
// confidence byte, never fully saturated, so the data points on top stand out.
const tints = new Map();
export function tintLut(k) {
  if (!tints.has(k)) {
    const c = CLASS_COLORS[k % CLASS_COLORS.length];
    tints.set(k, buildLut((b) => mix(NEUTRAL, c, 0.08 + 0.55 * (b / 255))));
  }
  return tints.get(k);
}

// 65 precomputed stroke colours for links, so a frame allocates no strings. Links start
// from a mid grey (not the near-white neutral) so weak links stay visible on white.
const STEPS = 32;
const LINK_ZERO = COLORS.link_zero;
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
