// The output plot: the model's decision boundary (or regression surface) over the input
// plane, with the data points on top. Points come from /data and are refetched when the
// data changes; the background comes with every frame.
import { CLASS_COLORS, DIVERGING_LUT, NEGATIVE, NEUTRAL, POSITIVE, TEST_EDGE, TRAIN_EDGE, css, diverging, tintLut } from "./colors.js";
import { PLANE } from "./constants.js";
import { formatNumber } from "./format.js";
import { t } from "./i18n.js";

// Tick labels along both axes of the input plane, at −PLANE, −PLANE/2, 0, PLANE/2, PLANE.
function drawAxes(figure) {
  const ticks = [-1, -0.5, 0, 0.5, 1].map((f) => f * PLANE);
  for (const [sel, name, place] of [[".axis-x", "X₁", (f) => ["left", `${f * 100}%`]], [".axis-y", "X₂", (f) => ["top", `${(1 - f) * 100}%`]]]) {
    const axis = figure?.querySelector(sel);
    if (!axis || axis.childElementCount) continue;
    for (const v of ticks) {
      const tick = document.createElement("span");
      tick.className = "tick";
      tick.textContent = formatNumber(v, 0).replace("-", "−");
      const [side, at] = place((v + PLANE) / (2 * PLANE));
      tick.style.setProperty(side, at);
      axis.append(tick);
    }
    const label = document.createElement("span");
    label.className = "axis-name";
    label.textContent = name;
    axis.append(label);
  }
}

export function createBoundaryView(canvas, { showTest, discretize, onClickPoint } = {}) {
  const ctx = canvas.getContext("2d");
  const off = document.createElement("canvas"); // G×G background, scaled up when drawn
  let data = null, problem = "classification", heat = null, probe = null, classes = 2;
  let lastBackground = null;
  let preview = null; // a neuron's map shown large while its thumbnail is hovered
  const figure = canvas.closest("figure");
  const legend = figure?.querySelector(".plot-legend");
  let legendKey = "", lastScale = 1;
  drawAxes(figure);

  // The colour key: one swatch a class, or the predicted value's scale (−s … s).
  function drawLegend(scale) {
    if (!legend) return;
    lastScale = scale;
    const key = `${problem}:${classes}:${scale}:${css(NEGATIVE)}`;
    if (key === legendKey) return;
    legendKey = key;
    legend.replaceChildren();
    if (problem === "classification") {
      for (let k = 0; k < classes; k++) {
        const item = document.createElement("span");
        const swatch = document.createElement("span");
        swatch.className = "key-swatch";
        swatch.style.setProperty("background", css(CLASS_COLORS[k % CLASS_COLORS.length]));
        item.append(swatch, t("output.class_n", { n: k }));
        legend.append(item);
      }
      return;
    }
    const bar = document.createElement("span");
    bar.className = "scale-bar";
    bar.style.setProperty("background", `linear-gradient(to right, ${css(NEGATIVE)}, ${css(NEUTRAL)}, ${css(POSITIVE)})`);
    const [lo, hi] = [-scale, scale].map((v) => {
      const tick = document.createElement("span");
      tick.className = "mono";
      tick.textContent = formatNumber(v, 1).replace("-", "−");
      return tick;
    });
    const caption = document.createElement("span");
    caption.textContent = t("output.value_key");
    legend.append(caption, lo, bar, hi);
  }

  const toPx = (v) => ((v + PLANE) / (2 * PLANE)) * canvas.width;
  const toPy = (v) => ((PLANE - v) / (2 * PLANE)) * canvas.height;

  function background() {
    if (!heat) return;
    const G = heat.res;
    if (off.width !== G) off.width = off.height = G;
    const octx = off.getContext("2d");
    const img = octx.createImageData(G, G);
    const px = new Uint32Array(img.data.buffer);
    if (problem === "classification") {
      const [top, conf] = heat.maps;
      const flat = discretize?.checked;
      // Tint toward the winning class by its confidence; lighter than the points.
      const luts = Array.from({ length: classes }, (_, k) => tintLut(k));
      for (let p = 0; p < px.length; p++) px[p] = luts[top[p]][flat ? 255 : conf[p]];
    } else {
      const [value] = heat.maps;
      for (let p = 0; p < px.length; p++) px[p] = DIVERGING_LUT[discretize?.checked ? (value[p] > 127 ? 230 : 25) : value[p]];
    }
    octx.putImageData(img, 0, 0);
    lastBackground = off;
  }

  function draw() {
    ctx.clearRect(0, 0, canvas.width, canvas.height);
    if (preview) {
      ctx.imageSmoothingEnabled = true;
      ctx.drawImage(preview, 0, 0, canvas.width, canvas.height);
    } else if (lastBackground) {
      ctx.imageSmoothingEnabled = true;
      ctx.drawImage(lastBackground, 0, 0, canvas.width, canvas.height);
    }
    if (data) {
      drawPoints(data.train, css(TRAIN_EDGE));
      if (showTest?.checked) drawPoints(data.test, css(TEST_EDGE));
    }
    if (probe) {
      ctx.beginPath();
      ctx.arc(toPx(probe[0]), toPy(probe[1]), 9, 0, 2 * Math.PI);
      ctx.lineWidth = 2.5;
      ctx.strokeStyle = css(TEST_EDGE);
      ctx.stroke();
    }
  }

  function drawPoints(set, stroke) {
    const r = Math.max(2.5, canvas.width / 110);
    ctx.lineWidth = 1;
    ctx.strokeStyle = stroke;
    for (let k = 0; k < set.x.length; k++) {
      const [x1, x2] = set.x[k];
      ctx.beginPath();
      ctx.arc(toPx(x1), toPy(x2), r, 0, 2 * Math.PI);
      // By the data's own problem: a frame of the other one may arrive before the new points.
      ctx.fillStyle = data.problem === "classification" ? css(CLASS_COLORS[set.y[k] % CLASS_COLORS.length])
        : css(diverging(set.y[k]));
      ctx.fill();
      ctx.stroke();
    }
  }

  canvas.addEventListener("click", (ev) => {
    const r = canvas.getBoundingClientRect();
    const x1 = ((ev.clientX - r.left) / r.width) * 2 * PLANE - PLANE;
    const x2 = PLANE - ((ev.clientY - r.top) / r.height) * 2 * PLANE;
    onClickPoint?.([x1, x2], ev);
  });
  showTest?.addEventListener("change", draw);
  discretize?.addEventListener("change", () => { background(); draw(); });

  return {
    setData(d) { data = d; draw(); },
    update(frame, decoded) {
      problem = frame.problem;
      classes = frame.layers[frame.layers.length - 1].units; // output units = classes
      probe = frame.probe?.x?.length === 2 ? frame.probe.x : null;
      drawLegend(frame.heatmaps?.output_scale ?? 1);
      if (decoded) { heat = decoded; background(); }
      draw();
    },
    reset() { heat = null; lastBackground = null; data = null; draw(); },
    repaint() { legendKey = ""; drawLegend(lastScale); background(); draw(); }, // the palette changed
    // Show a neuron's heatmap (a small canvas) in place of the output, or null to go back.
    preview(source) { preview = source; draw(); },
  };
}
