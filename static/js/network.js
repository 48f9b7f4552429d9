// The network drawing: binds to the server-rendered #network SVG and recolours it in
// place for each frame. A structure change replaces the SVG (htmx swap); the owner then
// makes a new view with createNetworkView(). No state outside the returned object.
import { DIVERGING_LUT, classLut, css, CLASS_COLORS, digitRgba, diverging, divergingCss } from "./colors.js";
import { BAR_WIDTH } from "./constants.js";
import { paintMap } from "./heatmap.js";
import { formatNumber } from "./format.js";
import { t } from "./i18n.js";

const MAX_LINK_WIDTH = 7;

// options.onPreview(canvas | null, label): a neuron's thumbnail is hovered (show it large).
// options.onEditWeight({layer, i, j, value}): a link was clicked and a new value typed;
//   i === null edits the bias of unit j. Without it the drawing is read-only (watch page).
// options.onInspect({layer, unit} | {loss: true}, x): a neuron or the loss layer was chosen
//   (x: its centre on the page).
// options.gradients(): true while the backprop view is on; links and neurons then show
//   ∂loss/∂w and ∂loss/∂b from frame.gradients instead of weights and activations.
export function createNetworkView(root, options = {}) {
  const svg = root.querySelector("svg");
  const plane = root.dataset.plane === "1";
  const problem = root.dataset.problem;
  // nodes[l][j] for active neurons; input features are keyed by their active index.
  const nodes = [];
  for (const g of root.querySelectorAll("g.node")) {
    const l = +g.dataset.l, j = +g.dataset.j;
    if (j < 0) continue;
    (nodes[l] ||= [])[j] = {
      g,
      thumb: g.querySelector("canvas.thumb"),
      dot: g.querySelector("circle.dot"),
      value: g.querySelector(".node-val"),
      bar: g.querySelector(".prob-bar"),
    };
  }
  const links = [...root.querySelectorAll("path.link")].map((el) => ({ el, l: +el.dataset.l, i: +el.dataset.i, j: +el.dataset.j }));
  const matrices = [...root.querySelectorAll("canvas.wmatrix")];
  const cells = [...root.querySelectorAll("canvas.cells")];
  const digit = root.querySelector("canvas.digit");
  const lossValue = root.querySelector("#loss-layer-value");
  const tip = root.querySelector(".net-tip");
  let frame = null;

  // Output neuron frames take their class colour once.
  const outLayer = nodes.length - 1;
  if (problem === "classification" && nodes[outLayer]) {
    nodes[outLayer].forEach((n, k) => {
      const c = css(CLASS_COLORS[k % CLASS_COLORS.length]);
      n.g.querySelector("rect.frame, circle.dot")?.setAttribute("stroke", c);
      n.bar?.setAttribute("fill", c);
    });
  }

  function weightAt(layer, i, j) {
    if (layer.weights) return layer.weights[i][j];
    const q = layer.weights_q;
    if (!q) return null;
    q._bytes ||= Int8Array.from(atob(q.data), (ch) => (ch.charCodeAt(0) << 24) >> 24);
    return (q._bytes[i * q.shape[1] + j] / 127) * q.scale;
  }

  function update(f, heat) {
    frame = f;
    const layers = f.layers;
    // Neurons: thumbnails (2-D data), or colour and value for the probe input.
    layers.forEach((layer, l) => {
      const isOut = l === layers.length - 1;
      const acts = layer.activations;
      const maxAbs = Math.max(1, ...acts.map((a) => Math.abs(a ?? 0)));
      (nodes[l] || []).forEach((n, j) => {
        if (!n) return;
        const a = acts[j];
        if (plane && heat && n.thumb) {
          const lut = isOut && problem === "classification" ? classLut(j) : DIVERGING_LUT;
          paintMap(n.thumb, heat.thumbs[l][j], heat.thumb, lut);
        }
        if (n.dot) n.dot.setAttribute("fill", isOut && problem === "classification" ? css(CLASS_COLORS[j % CLASS_COLORS.length], 0.15 + 0.85 * (a ?? 0)) : css(diverging((a ?? 0) / maxAbs)));
        if (n.value) n.value.textContent = formatNumber(a, 2);
        if (n.bar) n.bar.setAttribute("width", String(BAR_WIDTH * Math.max(0, Math.min(1, a ?? 0))));
      });
    });
    // Links: colour = sign, width = |w| (thicker in presentation mode, for projectors).
    // In the backprop view the same encoding shows ∂loss/∂w, scaled per layer.
    const thick = document.body.classList.contains("present") ? 1.7 : 1;
    const grads = options.gradients?.() ? f.gradients?.layers : null;
    root.classList.toggle("backprop", !!grads);
    // Layers drawn as weight-matrix images come without gradients (null).
    const gmax = grads ? grads.map((g) => (g ? Math.max(1e-12, ...g.weights.flat().map((v) => Math.abs(v ?? 0))) : 1)) : null;
    for (const k of links) {
      const layer = layers[k.l + 1];
      if (!layer) continue;
      let v = weightAt(layer, k.i, k.j) ?? 0;
      let size = Math.min(Math.abs(v), 4) / 4;
      if (grads?.[k.l]) {
        // √ of the share of the layer's largest gradient: small gradients stay visible.
        const g = (grads[k.l].weights[k.i]?.[k.j] ?? 0) / gmax[k.l];
        v = Math.sign(g) * Math.sqrt(Math.abs(g));
        size = Math.abs(v);
      }
      k.el.setAttribute("stroke", divergingCss(v));
      k.el.setAttribute("stroke-width", (thick * (0.5 + size * MAX_LINK_WIDTH)).toFixed(2));
    }
    if (grads) {
      // A neuron's gradient is its bias's: shown as the colour of its frame.
      grads.forEach((g, l) => {
        if (!g) return;
        const bmax = Math.max(1e-12, ...g.biases.map((v) => Math.abs(v ?? 0)));
        (nodes[l + 1] || []).forEach((n, j) => {
          const el = n?.g.querySelector("rect.frame, circle.dot");
          const share = (g.biases[j] ?? 0) / bmax;
          if (el) { el.setAttribute("stroke", divergingCss(Math.sign(share) * Math.sqrt(Math.abs(share)))); el.setAttribute("stroke-width", "3"); }
        });
      });
    }
    for (const canvas of matrices) paintMatrix(canvas, layers[+canvas.dataset.l + 1]);
    for (const canvas of cells) paintCells(canvas, layers[+canvas.dataset.l]);
    if (digit) paintDigit(digit, layers[0].activations);
    if (lossValue) lossValue.textContent = formatNumber(f.loss.train, 3);
  }

  function paintMatrix(canvas, layer) {
    if (!layer) return;
    const rows = canvas.height, cols = canvas.width;
    let max = 0;
    const values = new Float32Array(rows * cols);
    for (let i = 0; i < rows; i++) for (let j = 0; j < cols; j++) {
      const w = weightAt(layer, i, j) ?? 0;
      values[i * cols + j] = w;
      max = Math.max(max, Math.abs(w));
    }
    const bytes = new Uint8Array(rows * cols);
    for (let k = 0; k < bytes.length; k++) bytes[k] = Math.round((values[k] / (max || 1) + 1) * 127.5);
    paintRect(canvas, bytes, cols, rows, DIVERGING_LUT);
  }

  function paintCells(canvas, layer) {
    if (!layer) return;
    const acts = layer.activations.map((a) => a ?? 0);
    const max = Math.max(1e-9, ...acts.map(Math.abs));
    const bytes = Uint8Array.from(acts, (a) => Math.round((a / max + 1) * 127.5));
    paintRect(canvas, bytes, 1, acts.length, DIVERGING_LUT);
  }

  function paintDigit(canvas, pixels) {
    const ctx = canvas.getContext("2d");
    const img = ctx.createImageData(8, 8);
    for (let k = 0; k < 64; k++) img.data.set(digitRgba(pixels[k] ?? 0), k * 4);
    ctx.putImageData(img, 0, 0);
  }

  // Hover: the live value of a link, a weight-matrix cell or a compact cell.
  function showTip(ev, text) {
    tip.textContent = text;
    tip.hidden = false;
    const box = root.getBoundingClientRect();
    tip.style.left = `${ev.clientX - box.left + 12}px`;
    tip.style.top = `${ev.clientY - box.top + 12}px`;
  }
  svg.addEventListener("mousemove", (ev) => {
    if (!frame) return;
    const el = ev.target;
    if (el.matches?.("path.link")) {
      const l = +el.dataset.l, i = +el.dataset.i, j = +el.dataset.j;
      const w = weightAt(frame.layers[l + 1], i, j);
      showTip(ev, t("net.weight_tip", { value: formatNumber(w, 4), from: i + 1, to: j + 1 }));
    } else if (el.matches?.("canvas.wmatrix")) {
      const r = el.getBoundingClientRect();
      const j = Math.floor(((ev.clientX - r.left) / r.width) * el.width);
      const i = Math.floor(((ev.clientY - r.top) / r.height) * el.height);
      const w = weightAt(frame.layers[+el.dataset.l + 1], i, j);
      showTip(ev, t("net.weight_tip", { value: formatNumber(w, 4), from: i + 1, to: j + 1 }));
    } else if (el.closest?.("g.node:not(.feature)")) {
      const g = el.closest("g.node");
      const l = +g.dataset.l, j = +g.dataset.j;
      const b = frame.layers[l]?.biases?.[j];
      if (b !== undefined) showTip(ev, t("net.bias_tip", { value: formatNumber(b, 4) }));
    } else if (el.matches?.("canvas.cells")) {
      const r = el.getBoundingClientRect();
      const j = Math.floor(((ev.clientY - r.top) / r.height) * el.height);
      const a = frame.layers[+el.dataset.l]?.activations[j];
      showTip(ev, t("net.neuron_tip", { n: j + 1, value: formatNumber(a, 4) }));
    } else {
      tip.hidden = true;
    }
  });
  svg.addEventListener("mouseleave", () => (tip.hidden = true));

  // Hovering a neuron shows its heatmap large in the output plot.
  for (const [l, layer] of nodes.entries()) {
    (layer || []).forEach((n, j) => {
      if (!n?.thumb) return;
      const label = t("output.neuron_preview", { layer: columnTitle(l), n: j + 1 });
      n.g.addEventListener("mouseenter", () => options.onPreview?.(n.thumb, label));
      n.g.addEventListener("mouseleave", () => options.onPreview?.(null));
    });
  }
  function columnTitle(l) {
    return root.querySelector(`.column[data-layer="${l}"] .col-title`)?.textContent ?? "";
  }

  // Clicking (or Enter on) a neuron or the loss layer opens the inspector.
  if (options.onInspect) {
    svg.addEventListener("click", (ev) => {
      // The second argument, the chosen element's centre x, lets the inspector open on the other side.
      const centreX = (el) => { const r = el.getBoundingClientRect(); return r.left + r.width / 2; };
      const target = ev.target.closest?.("[data-inspect]");
      if (target) {
        if (target.dataset.inspect === "loss") options.onInspect({ loss: true }, centreX(target));
        else options.onInspect({ layer: +target.dataset.l, unit: +target.dataset.j }, centreX(target));
        return;
      }
      if (ev.target.matches?.("canvas.cells")) {
        const r = ev.target.getBoundingClientRect();
        const unit = Math.floor(((ev.clientY - r.top) / r.height) * ev.target.height);
        options.onInspect({ layer: +ev.target.dataset.l, unit }, centreX(ev.target));
      }
    });
  }

  // Clicking a link opens a small editor for its weight.
  if (options.onEditWeight) {
    svg.addEventListener("click", (ev) => {
      const el = ev.target;
      if (!frame || !el.matches?.("path.link")) return;
      const layer = +el.dataset.l, i = +el.dataset.i, j = +el.dataset.j;
      openEditor(ev, weightAt(frame.layers[layer + 1], i, j), (value) => options.onEditWeight({ layer, i, j, value }));
    });
  }

  function openEditor(ev, value, submit) {
    root.querySelector(".weight-editor")?.remove();
    const form = document.createElement("form");
    form.className = "weight-editor";
    const input = document.createElement("input");
    input.type = "number";
    input.step = "any";
    input.value = value === null ? "" : (+value).toFixed(4);
    input.setAttribute("aria-label", t("net.edit_weight"));
    form.append(input);
    const box = root.getBoundingClientRect();
    form.style.left = `${ev.clientX - box.left}px`;
    form.style.top = `${ev.clientY - box.top}px`;
    form.addEventListener("submit", (e) => {
      e.preventDefault();
      const v = parseFloat(input.value);
      if (Number.isFinite(v)) submit(v);
      form.remove();
    });
    input.addEventListener("keydown", (e) => { if (e.key === "Escape") form.remove(); });
    input.addEventListener("blur", () => setTimeout(() => form.remove(), 150));
    root.append(form);
    input.focus();
    input.select();
  }

  return { root, update, weightAt, shapeVersion: +root.dataset.shapeVersion, get frame() { return frame; } };
}

function paintRect(canvas, bytes, w, h, lut) {
  const ctx = canvas.getContext("2d");
  const img = ctx.createImageData(w, h);
  const px = new Uint32Array(img.data.buffer);
  for (let k = 0; k < px.length; k++) px[k] = lut[bytes[k]];
  ctx.putImageData(img, 0, 0);
}
