// The figures around the drawing: epoch counter, losses and accuracies.
import { formatNumber } from "./i18n.js";

export function formatEpoch(n) {
  return String(n).padStart(6, "0").replace(/\B(?=(\d{3})+(?!\d))/g, ",");
}

export function createNumbers(doc = document) {
  const set = (sel, v) => { const el = doc.querySelector(sel); if (el) el.textContent = v; };
  const percent = (x) => (x === null || x === undefined ? "–" : `${(x * 100).toFixed(1)}%`);
  return {
    update(f) {
      set("#epoch", formatEpoch(f.epoch));
      set("#loss-test", formatNumber(f.loss.test, 3));
      set("#loss-train", formatNumber(f.loss.train, 3));
      const acc = f.accuracy;
      doc.querySelectorAll(".metrics .acc").forEach((el) => (el.hidden = !acc));
      if (acc) {
        set("#acc-test", percent(acc.test));
        set("#acc-train", percent(acc.train));
      }
    },
    reset() { set("#epoch", formatEpoch(0)); },
  };
}
