// Train and test loss over epochs. The history arrives once per stream ("history" event)
// and grows by one point per frame; it is thinned like the server's to stay bounded.
import { NEGATIVE, css } from "./colors.js";
import { HISTORY_LEN } from "./constants.js";
import { formatNumber } from "./format.js";
import { t } from "./i18n.js";

const MAX_POINTS = HISTORY_LEN; // the server keeps as many (Settings.history_len)
const TICK_PX = 12; // tick labels, in CSS pixels
const MARGIN = { left: 40, right: 6, top: 8, bottom: 17 }; // CSS pixels: room for the tick labels
// Test: solid, in the text colour; training: dashed, muted. Both from the stylesheet, so
// the dark theme and presentation mode get readable lines (app.css --ink / --muted).
const STYLE = { test: { color: "--ink", width: 2, dash: [] }, train: { color: "--muted", width: 1.5, dash: [5, 3] } };

export function createLossChart(canvas, tip) {
  const ctx = canvas.getContext("2d");
  let points = []; // [epoch, train, test]
  let marker = null; // an epoch to mark (the timeline's checkpoint being viewed)

  function add(epoch, train, test) {
    const last = points[points.length - 1];
    if (last && epoch < last[0]) points = points.filter((p) => p[0] < epoch); // reset or resume: go back
    if (last && last[0] === epoch) points[points.length - 1] = [epoch, train, test];
    else points.push([epoch, train, test]);
    if (points.length > MAX_POINTS) {
      const half = points.length >> 1;
      points = points.slice(0, half).filter((_, k) => k % 2 === 0).concat(points.slice(half));
    }
  }

  // The canvas draws at the size it is shown (times the screen's pixel ratio), so its tick
  // labels come out at TICK_PX CSS pixels; the margins hold them.
  function fitCanvas() {
    const ratio = window.devicePixelRatio || 1;
    const w = Math.round(canvas.clientWidth * ratio), h = Math.round(canvas.clientHeight * ratio);
    if (w > 0 && h > 0 && (canvas.width !== w || canvas.height !== h)) { canvas.width = w; canvas.height = h; }
    return ratio;
  }

  function scales() {
    const e0 = points[0]?.[0] ?? 0, e1 = Math.max(e0 + 1, points[points.length - 1]?.[0] ?? 1);
    let top = 0;
    for (const [, a, b] of points) top = Math.max(top, a ?? 0, b ?? 0);
    top = top || 1;
    const r = window.devicePixelRatio || 1;
    const W = canvas.width, H = canvas.height, left = MARGIN.left * r, right = W - MARGIN.right * r;
    const high = MARGIN.top * r, low = H - MARGIN.bottom * r;
    return {
      e0, e1, top, left, right, high, low,
      x: (e) => left + ((e - e0) / (e1 - e0)) * (right - left),
      y: (v) => low - (Math.min(v, top) / top) * (low - high),
      epochAt: (px) => e0 + ((px - left) / (right - left)) * (e1 - e0),
    };
  }

  // Loss at 0, half the top and the top; epochs at the first, middle and last point.
  function drawTicks(s, style, r) {
    ctx.font = `${TICK_PX * r}px ${style.fontFamily}`;
    ctx.fillStyle = style.getPropertyValue("--muted").trim();
    ctx.strokeStyle = style.getPropertyValue("--line").trim();
    ctx.lineWidth = r;
    ctx.textAlign = "right";
    ctx.textBaseline = "middle";
    for (const v of [0, s.top / 2, s.top]) {
      const Y = s.y(v);
      ctx.fillText(formatNumber(v, s.top < 0.1 ? 3 : 2), s.left - 4 * r, Y);
      ctx.beginPath(); ctx.moveTo(s.left, Y); ctx.lineTo(s.right, Y); ctx.stroke();
    }
    ctx.textBaseline = "bottom";
    const epochs = [s.e0, Math.round((s.e0 + s.e1) / 2), s.e1];
    epochs.forEach((e, k) => {
      ctx.textAlign = ["left", "center", "right"][k];
      ctx.fillText(String(e), s.x(e), canvas.height - r);
    });
  }

  function draw() {
    const r = fitCanvas();
    const { width: W, height: H } = canvas;
    ctx.clearRect(0, 0, W, H);
    if (points.length < 2) return;
    const s = scales();
    const style = getComputedStyle(canvas);
    drawTicks(s, style, r);
    for (const [key, col] of [["train", 1], ["test", 2]]) {
      ctx.beginPath();
      let started = false;
      for (const p of points) {
        if (p[col] === null || p[col] === undefined) continue;
        const X = s.x(p[0]), Y = s.y(p[col]);
        if (started) ctx.lineTo(X, Y); else { ctx.moveTo(X, Y); started = true; }
      }
      ctx.strokeStyle = style.getPropertyValue(STYLE[key].color).trim();
      ctx.lineWidth = STYLE[key].width * r;
      ctx.setLineDash(STYLE[key].dash.map((v) => v * r));
      ctx.stroke();
    }
    ctx.setLineDash([]);
    if (marker !== null) {
      const X = s.x(marker);
      ctx.beginPath();
      ctx.moveTo(X, s.high);
      ctx.lineTo(X, s.low);
      ctx.strokeStyle = css(NEGATIVE); // the palette's, so presentation mode changes it too
      ctx.lineWidth = 2 * r;
      ctx.stroke();
    }
  }

  new ResizeObserver(() => draw()).observe(canvas); // presentation mode, a narrower window

  canvas.addEventListener("mousemove", (ev) => {
    if (points.length < 2 || !tip) return;
    const r = canvas.getBoundingClientRect();
    const epoch = scales().epochAt(((ev.clientX - r.left) / r.width) * canvas.width);
    let best = points[0];
    for (const p of points) if (Math.abs(p[0] - epoch) < Math.abs(best[0] - epoch)) best = p;
    tip.textContent = t("output.chart_tip", { epoch: best[0], train: formatNumber(best[1], 4), test: formatNumber(best[2], 4) });
    tip.hidden = false;
  });
  canvas.addEventListener("mouseleave", () => { if (tip) tip.hidden = true; });

  return {
    setHistory(rows) { points = rows.map((r) => [...r]); draw(); },
    update(frame) { add(frame.epoch, frame.loss.train, frame.loss.test); draw(); },
    reset() { points = []; draw(); },
    redraw: draw, // the theme changed: its colours come from the stylesheet
    mark(epoch) { if (epoch !== marker) { marker = epoch; draw(); } },
  };
}
