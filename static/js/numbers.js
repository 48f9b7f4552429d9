// The figures around the drawing: epoch counter, losses, accuracies, RMSE/R² and the
// confusion matrix of the test data.
import { CLASS_COLORS, css } from "./colors.js";
import { formatNumber, t } from "./i18n.js";

export function formatEpoch(n) {
  return String(n).padStart(6, "0").replace(/\B(?=(\d{3})+(?!\d))/g, ",");
}

export function createNumbers(doc = document) {
  const $ = (sel) => doc.querySelector(sel);
  const set = (sel, v) => { const el = $(sel); if (el) el.textContent = v; };
  const percent = (x) => (x === null || x === undefined ? "–" : `${(x * 100).toFixed(1)}%`);
  let matrixSize = -1;

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
      table.querySelectorAll("th").forEach((th) => {
        const n = th.textContent;
        if (n !== "") { th.style.color = css(CLASS_COLORS[+n % CLASS_COLORS.length]); th.title = t("output.class_n", { n }); }
      });
    }
    const cells = table.querySelectorAll("td");
    const total = Math.max(1, ...matrix.map((row) => row.reduce((a, b) => a + b, 0)));
    matrix.forEach((row, i) => row.forEach((v, j) => {
      const cell = cells[i * k + j];
      cell.textContent = v;
      const share = v / total;
      cell.style.background = i === j ? `rgba(8,119,189,${0.08 + 0.8 * share})` : v ? `rgba(245,147,34,${0.15 + 0.8 * share})` : "";
    }));
  }

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
      const m = f.metrics || {};
      const regression = "rmse" in m;
      doc.querySelectorAll(".metrics .reg").forEach((el) => (el.hidden = !regression));
      if (regression) {
        set("#rmse", formatNumber(m.rmse, 3));
        set("#r2", formatNumber(m.r2, 3));
      }
      confusion(m.confusion || null);
    },
  };
}
