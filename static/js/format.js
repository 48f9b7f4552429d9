// How the page writes numbers. Pure functions (no DOM), so node's test runner can check
// them against Python's formatting (tests/js/format.test.js).

// x with a fixed number of decimals; "–" for a missing or non-finite value (a frame
// sends NaN and ∞ as null).
export function formatNumber(x, digits = 3) {
  if (x === null || x === undefined || !Number.isFinite(x)) return "–";
  return x.toFixed(digits);
}

// The epoch counter: at least six digits, grouped by thousands (000,123), as the seed article shows it.
export function formatEpoch(n) {
  return String(n).padStart(6, "0").replace(/\B(?=(\d{3})+(?!\d))/g, ",");
}

// A share in [0, 1] as a percentage with one decimal; "–" when missing.
export function formatPercent(x) {
  return x === null || x === undefined || !Number.isFinite(x) ? "–" : `${(x * 100).toFixed(1)}%`;
}
