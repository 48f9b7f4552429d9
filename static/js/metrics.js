// The metrics panel: epoch counter, losses, accuracies, RMSE/R² and the confusion matrix
// of the test data.
import { CLASS_COLORS, NEGATIVE, POSITIVE, css } from "./colors.js";
import { formatEpoch, formatNumber, formatPercent } from "./format.js";
import { t } from "./i18n.js";

export function createMetrics(doc = document) {
  const $ = (sel) => doc.querySelector(sel);
  const set = (sel, v) => { const el = $(sel); if (el) el.textContent = v; };
  let matrixSize = -1;
  let last = null; // the newest frame, to recolour after a palette switch

  function confusion(matrix) {
    const table = $("#confusion");
    const area = $(".confusion-area");
    if (!table || !area) return;
    area.hidden = !matrix;
    if (!matrix) return;
    const k = matrix.length;
    if (k !== matrixSize) { // build the cells once per class count, then only fill them
      matrixSize = k;
      const head = `<tr><th></th>${matrix.map((_, j) => `<th scope="col">${j}</th>`).join("")}</tr>`;
      const rows = matrix.map((_, i) => `<tr><th scope="row">${i}</th>${matrix.map(() => "<td></td>").join("")}</tr>`);
      table.innerHTML = head + rows.join("");
      table.querySelectorAll("th").forEach((th) => { if (th.textContent !== "") th.title = t("output.class_n", { n: th.textContent }); });
    }
    // Class colours every time: the palette may have changed since the cells were built.
    table.querySelectorAll("th").forEach((th) => {
      const n = th.textContent;
      if (n !== "") th.style.color = css(CLASS_COLORS[+n % CLASS_COLORS.length]);
    });
    const cells = table.querySelectorAll("td");
    const total = Math.max(1, ...matrix.map((row) => row.reduce((a, b) => a + b, 0)));
    // Right answers (the diagonal) in the positive colour, mistakes in the negative one,
    // more opaque the larger their share of the largest row.
    matrix.forEach((row, i) => row.forEach((v, j) => {
      const cell = cells[i * k + j];
      cell.textContent = v;
      const share = v / total;
      cell.style.background = i === j ? css(POSITIVE, 0.08 + 0.8 * share) : v ? css(NEGATIVE, 0.15 + 0.8 * share) : "";
    }));
  }

  function update(f) {
    last = f;
    set("#epoch", formatEpoch(f.epoch));
    set("#loss-test", formatNumber(f.loss.test, 3));
    set("#loss-train", formatNumber(f.loss.train, 3));
    const acc = f.accuracy;
    doc.querySelectorAll(".metrics .acc").forEach((el) => (el.hidden = !acc));
    if (acc) {
      set("#acc-test", formatPercent(acc.test));
      set("#acc-train", formatPercent(acc.train));
    }
    const m = f.metrics || {};
    const regression = "rmse" in m;
    doc.querySelectorAll(".metrics .reg").forEach((el) => (el.hidden = !regression));
    if (regression) {
      set("#rmse", formatNumber(m.rmse, 3));
      set("#r2", formatNumber(m.r2, 3));
    }
    confusion(m.confusion || null);
  }

  return {
    update,
    repaint() { if (last) update(last); },
  };
}
