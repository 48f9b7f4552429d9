// The network drawing: binds to the server-rendered #network SVG and recolours it in
// place for each frame. A structure change replaces the SVG (htmx swap); the owner then
// makes a new view with createNetworkView(). No state outside the returned object.
//
// Readable at any size: the server sends three drawings of the same network (app/layout.py:
// standard, wide, vertical); this view shows the one that comes out largest in its box and
// swaps when the box changes (a phone turned, presentation mode). Text keeps its CSS size
// (--net-text, --net-title in app.css) whatever the drawing's scale: the scale is written to
// --k (viewBox units per CSS pixel) for the stylesheet, the bands for labels and controls
// around the nodes are sized in pixels, and a drawing never gets so small that its column
// titles or controls would run into each other: a wide network scrolls instead.
import { DIVERGING_LUT, classLut, css, CLASS_COLORS, digitRgba, diverging, divergingCss } from "./colors.js";
import { BAR_WIDTH, GRAD_DECADES } from "./constants.js";
import { paintMap } from "./heatmap.js";
import { formatNumber } from "./format.js";
import { neuronName, t } from "./i18n.js";

const MAX_LINK_WIDTH = 7;
const MAX_SCALE = 1.6; // a small network on a large screen stops growing here
const SVG_NS = "http://www.w3.org/2000/svg";
// The loss layer's box: at least this wide in the drawing's units, and as wide as its name
// plus a margin on each side in pixels (the name's size is in CSS pixels).
const LOSS_BOX_MIN = 112;
const LOSS_BOX_MARGIN_PX = 10;

// Gradient view: |∂loss/∂w| on a log scale fixed for good (GRAD_DECADES = [lo, hi], powers
// of ten): 10^hi and above is the thickest line, 10^lo and below a hairline, and every
// decade in between adds the same width. A layer whose gradients are 1,000× smaller is
// three steps thinner, in every frame of every session.
export function gradShare(g) {
  const [lo, hi] = GRAD_DECADES;
  const m = Math.abs(g ?? 0);
  if (!(m > 0)) return 0;
  return Math.max(0, Math.min(1, (Math.log10(m) - lo) / (hi - lo)));
}

// options.onPreview(canvas | null, label): a neuron's thumbnail is hovered (show it large).
// options.onEditWeight({layer, i, j, value}): a link was clicked and a new value typed;
//   i === null edits the bias of unit j. Without it the drawing is read-only (watch page).
// options.onInspect({layer, unit} | {loss: true}, x): a neuron or the loss layer was chosen
//   (x: its centre on the page).
// options.gradients(): true while the backprop view is on; links and neurons then show
//   ∂loss/∂w and ∂loss/∂b from frame.gradients instead of weights and activations.
export function createNetworkView(root, options = {}) {
  const box = root.querySelector(".net-box");
  const spare = root.querySelector("template.net-variants");
  const plane = root.dataset.plane === "1";
  const problem = root.dataset.problem;
  const tip = root.querySelector(".net-tip");
  let frame = null, heat = null;
  let d = bind(box.querySelector("svg")); // the drawing shown
  drawGradScale(root.querySelector(".grad-scale-keys"));

  // Everything the view recolours, found once per drawing.
  function bind(svg) {
    const nodes = []; // nodes[l][j] for active neurons; input features keyed by their active index
    for (const g of svg.querySelectorAll("g.node")) {
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
    const drawing = {
      svg,
      nodes,
      vertical: svg.dataset.variant === "vertical",
      links: [...svg.querySelectorAll("path.link")].map((el) => ({ el, l: +el.dataset.l, i: +el.dataset.i, j: +el.dataset.j })),
      matrices: [...svg.querySelectorAll("canvas.wmatrix")],
      cells: [...svg.querySelectorAll("canvas.cells")],
      digit: svg.querySelector("canvas.digit"),
      lossValue: svg.querySelector("#loss-layer-value"),
    };
    // Output neuron frames take their class colour once.
    const out = nodes[nodes.length - 1];
    if (problem === "classification" && out) {
      out.forEach((n, k) => {
        const c = css(CLASS_COLORS[k % CLASS_COLORS.length]);
        n.g.querySelector("rect.frame, circle.dot")?.setAttribute("stroke", c);
        n.bar?.setAttribute("fill", c);
      });
    }
    return drawing;
  }

  function weightAt(layer, i, j) {
    if (layer.weights) return layer.weights[i]?.[j]; // undefined past a stale frame's shape
    const q = layer.weights_q;
    if (!q) return null;
    q._bytes ||= Int8Array.from(atob(q.data), (ch) => (ch.charCodeAt(0) << 24) >> 24);
    return (q._bytes[i * q.shape[1] + j] / 127) * q.scale;
  }

  function update(f, h) {
    frame = f;
    if (h) heat = h;
    const layers = f.layers;
    // Neurons: thumbnails (2-D data), or colour and value for the probe input.
    layers.forEach((layer, l) => {
      const isOut = l === layers.length - 1;
      const acts = layer.activations;
      const maxAbs = Math.max(1, ...acts.map((a) => Math.abs(a ?? 0)));
      (d.nodes[l] || []).forEach((n, j) => {
        if (!n) return;
        const a = acts[j];
        const map = plane && n.thumb ? h?.thumbs?.[l]?.[j] : undefined; // none for a neuron the frame lacks
        if (map) paintMap(n.thumb, map, h.thumb, isOut && problem === "classification" ? classLut(j) : DIVERGING_LUT);
        if (n.dot) n.dot.setAttribute("fill", isOut && problem === "classification" ? css(CLASS_COLORS[j % CLASS_COLORS.length], 0.15 + 0.85 * (a ?? 0)) : css(diverging((a ?? 0) / maxAbs)));
        if (n.value) n.value.textContent = formatNumber(a, 2);
        if (n.bar) n.bar.setAttribute("width", String(BAR_WIDTH * Math.max(0, Math.min(1, a ?? 0))));
      });
    });
    // Links: colour = sign, width = |w| (thicker in presentation mode, for projectors).
    // In the backprop view the same encoding shows ∂loss/∂w on the fixed log scale.
    const thick = document.body.classList.contains("present") ? 1.7 : 1;
    const grads = options.gradients?.() ? f.gradients?.layers : null;
    root.classList.toggle("backprop", !!grads);
    for (const k of d.links) {
      const layer = layers[k.l + 1];
      if (!layer) continue;
      let v = weightAt(layer, k.i, k.j) ?? 0;
      let size = Math.min(Math.abs(v), 4) / 4;
      if (grads?.[k.l]) { // layers drawn as weight-matrix images come without gradients (null)
        const g = grads[k.l].weights[k.i]?.[k.j] ?? 0;
        size = gradShare(g);
        v = Math.sign(g) * size;
      }
      k.el.setAttribute("stroke", divergingCss(v));
      k.el.setAttribute("stroke-width", (thick * (0.5 + size * MAX_LINK_WIDTH)).toFixed(2));
    }
    if (grads) {
      // A neuron's gradient is its bias's: shown as the colour of its frame, on the same scale.
      grads.forEach((g, l) => {
        if (!g) return;
        (d.nodes[l + 1] || []).forEach((n, j) => {
          const el = n?.g.querySelector("rect.frame, circle.dot");
          const b = g.biases[j] ?? 0;
          if (el) { el.setAttribute("stroke", divergingCss(Math.sign(b) * gradShare(b))); el.setAttribute("stroke-width", "3"); }
        });
      });
    }
    for (const canvas of d.matrices) paintMatrix(canvas, layers[+canvas.dataset.l + 1]);
    for (const canvas of d.cells) paintCells(canvas, layers[+canvas.dataset.l]);
    if (d.digit) paintDigit(d.digit, layers[0].activations);
    if (d.lossValue) d.lossValue.textContent = formatNumber(f.loss.train, 3);
  }

  // A weight matrix, or one row of it (data-row: the strip level with that input's node).
  // data-t: drawn transposed (the vertical drawing: rows across, columns down).
  function paintMatrix(canvas, layer) {
    if (!layer) return;
    const rows = +canvas.dataset.rows, cols = +canvas.dataset.cols;
    const only = canvas.dataset.row === undefined ? null : +canvas.dataset.row;
    let max = 0;
    for (let i = 0; i < rows; i++) for (let j = 0; j < cols; j++) max = Math.max(max, Math.abs(weightAt(layer, i, j) ?? 0));
    const first = only ?? 0, count = only === null ? rows : 1;
    const bytes = new Uint8Array(count * cols);
    const transposed = canvas.dataset.t === "1";
    for (let r = 0; r < count; r++) for (let j = 0; j < cols; j++) {
      const w = weightAt(layer, first + r, j) ?? 0;
      bytes[transposed ? j * count + r : r * cols + j] = Math.round((w / (max || 1) + 1) * 127.5);
    }
    paintRect(canvas, bytes, canvas.width, canvas.height, DIVERGING_LUT);
  }

  function paintCells(canvas, layer) {
    if (!layer) return;
    const acts = layer.activations.map((a) => a ?? 0);
    const max = Math.max(1e-9, ...acts.map(Math.abs));
    const bytes = Uint8Array.from(acts, (a) => Math.round((a / max + 1) * 127.5));
    paintRect(canvas, bytes, canvas.width, canvas.height, DIVERGING_LUT);
  }

  function paintDigit(canvas, pixels) {
    const ctx = canvas.getContext("2d");
    const img = ctx.createImageData(8, 8);
    for (let k = 0; k < 64; k++) img.data.set(digitRgba(pixels[k] ?? 0), k * 4);
    ctx.putImageData(img, 0, 0);
  }

  // Which cell of a weight matrix (i, j) or of a strip of cells (j) is under the pointer.
  function matrixCell(el, ev) {
    const r = el.getBoundingClientRect();
    const across = Math.floor(((ev.clientX - r.left) / r.width) * el.width);
    const down = Math.floor(((ev.clientY - r.top) / r.height) * el.height);
    const [a, b] = el.dataset.t === "1" ? [across, down] : [down, across];
    return el.dataset.row === undefined ? [a, b] : [+el.dataset.row, b];
  }
  const cellIndex = (el, ev) => {
    const r = el.getBoundingClientRect();
    return el.dataset.t === "1" ? Math.floor(((ev.clientX - r.left) / r.width) * el.width)
      : Math.floor(((ev.clientY - r.top) / r.height) * el.height);
  };

  // Hover: the live value of a link, a weight-matrix cell or a compact cell. Listeners sit on
  // the box, so they serve whichever drawing is shown.
  // The tip never covers the inspector or the forward pass: it moves to the pointer's other
  // side, or stays hidden.
  function showTip(ev, text) {
    tip.textContent = text;
    tip.hidden = false;
    const r = root.getBoundingClientRect();
    const covers = () => {
      const a = tip.getBoundingClientRect();
      return [...document.querySelectorAll("#inspector, #forward-box")].some((el) => {
        if (el.hidden) return false;
        const b = el.getBoundingClientRect();
        return a.left < b.right && b.left < a.right && a.top < b.bottom && b.top < a.bottom;
      });
    };
    for (const [dx, dy] of [[12, 12], [-12, 12], [12, -12], [-12, -12]]) {
      tip.style.left = `${ev.clientX - r.left + (dx > 0 ? dx : dx - tip.offsetWidth)}px`;
      tip.style.top = `${ev.clientY - r.top + (dy > 0 ? dy : dy - tip.offsetHeight)}px`;
      if (!covers()) return;
    }
    tip.hidden = true;
  }
  box.addEventListener("mousemove", (ev) => {
    if (!frame) return;
    const el = ev.target;
    if (el.matches?.("path.link")) {
      const l = +el.dataset.l, i = +el.dataset.i, j = +el.dataset.j;
      const w = weightAt(frame.layers[l + 1], i, j);
      showTip(ev, t("net.weight_tip", { value: formatNumber(w, 4), from: i + 1, to: j + 1 }));
    } else if (el.matches?.("canvas.wmatrix")) {
      const [i, j] = matrixCell(el, ev);
      const w = weightAt(frame.layers[+el.dataset.l + 1], i, j);
      showTip(ev, t("net.weight_tip", { value: formatNumber(w, 4), from: i + 1, to: j + 1 }));
    } else if (el.closest?.("g.node:not(.feature)")) {
      const g = el.closest("g.node");
      const b = frame.layers[+g.dataset.l]?.biases?.[+g.dataset.j];
      if (b !== undefined) showTip(ev, t("net.bias_tip", { value: formatNumber(b, 4) }));
    } else if (el.matches?.("canvas.cells")) {
      const j = cellIndex(el, ev);
      const a = frame.layers[+el.dataset.l]?.activations[j];
      showTip(ev, t("net.neuron_tip", { n: j + 1, value: formatNumber(a, 4) }));
    } else {
      tip.hidden = true;
    }
  });
  box.addEventListener("mouseleave", () => (tip.hidden = true));

  // Hovering a neuron shows its heatmap large in the output plot.
  let previewing = null;
  box.addEventListener("mouseover", (ev) => {
    const g = ev.target.closest?.("g.node");
    const thumb = g?.querySelector("canvas.thumb");
    if (!g || g === previewing || !thumb || +g.dataset.j < 0) return;
    previewing = g;
    const l = +g.dataset.l, j = +g.dataset.j;
    const isClass = problem === "classification" && g.closest("g.column")?.classList.contains("col-output");
    options.onPreview?.(thumb, neuronName(columnTitle(l), j, isClass));
  });
  box.addEventListener("mouseout", (ev) => {
    if (!previewing || previewing.contains(ev.relatedTarget)) return;
    previewing = null;
    options.onPreview?.(null);
  });
  function columnTitle(l) {
    return d.svg.querySelector(`.column[data-layer="${l}"] .col-title`)?.textContent ?? "";
  }

  // Clicking (or Enter on) a neuron or the loss layer opens the inspector.
  if (options.onInspect) {
    box.addEventListener("click", (ev) => {
      // The second argument, the chosen element's centre x, lets the inspector open on the other side.
      const centreX = (el) => { const r = el.getBoundingClientRect(); return r.left + r.width / 2; };
      const target = ev.target.closest?.("[data-inspect]");
      if (target) {
        if (target.dataset.inspect === "loss") options.onInspect({ loss: true }, centreX(target));
        else options.onInspect({ layer: +target.dataset.l, unit: +target.dataset.j }, centreX(target));
        return;
      }
      if (ev.target.matches?.("canvas.cells")) options.onInspect({ layer: +ev.target.dataset.l, unit: cellIndex(ev.target, ev) }, centreX(ev.target));
    });
  }

  // Clicking a link opens a small editor for its weight.
  if (options.onEditWeight) {
    box.addEventListener("click", (ev) => {
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
    const r = root.getBoundingClientRect();
    form.style.left = `${ev.clientX - r.left}px`;
    form.style.top = `${ev.clientY - r.top}px`;
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

  // --- fitting the drawing to its box ---------------------------------------------------------
  // A length the stylesheet gives as a custom property (max(12px, 0.86rem) …), in pixels.
  const probe = document.createElement("span");
  probe.className = "visually-hidden";
  probe.setAttribute("aria-hidden", "true");
  root.append(probe);
  const px = (name) => {
    probe.style.setProperty("width", `var(${name})`);
    return parseFloat(getComputedStyle(probe).width) || 0;
  };

  // The box's room: its width, and the height it may take (its max-height, or the height
  // the page gives it in presentation mode and embeds).
  function room() {
    const cs = getComputedStyle(box);
    const given = cs.getPropertyValue("--net-fill").trim() === "1"; // a height the page gives the box
    const height = given ? box.clientHeight : cs.maxHeight !== "none" ? parseFloat(cs.maxHeight) : Infinity;
    return { width: box.clientWidth, height: height > 0 ? height : Infinity };
  }

  // Pixel sizes the stylesheet asks for, measured once on the drawing shown.
  function bands(svg) {
    showLabelsWhole(svg); // measured as written, not as the last fit broke or hid them
    const titles = [...svg.querySelectorAll(".col-title")].map((el) => el.getBoundingClientRect().width);
    const counts = countLabels(svg).map(countWidths);
    const ctl = [...root.querySelectorAll(".col-ctl")].map((el) => el.getBoundingClientRect());
    const lossName = svg.querySelector(".loss-name")?.getBoundingClientRect().width;
    const lossLabels = svg.querySelector(".loss-box")?.closest("g.column")?.querySelector("text.col-labels");
    return {
      title: Math.max(0, ...titles), // the widest column title
      count: Math.max(0, ...counts.map((c) => c.whole)), // the widest count ("ニューロン 128 個") on one line
      countPart: Math.max(0, ...counts.map((c) => c.part)), // and broken at its first space
      ctlWidth: Math.max(0, ...ctl.map((r) => r.width)),
      ctlHeight: Math.max(0, ...ctl.map((r) => r.height)),
      // The loss column is the last: its box (the name plus its margins) and its labels
      // must end inside the drawing, whatever the language's words weigh.
      // Half the wider of the two, plus a few pixels so the box's stroke is not cut either.
      lossHalf: lossName ? Math.max(lossName + 2 * LOSS_BOX_MARGIN_PX, lossLabels?.getBoundingClientRect().width ?? 0) / 2 + 4 : 0,
    };
  }

  // The loss box's centre in the drawing's units, as laid out (kept: the box is resized around it).
  function lossCentre(g) {
    const rect = g.querySelector("rect");
    const m = /translate\(([-\d.]+),([-\d.]+)\)/.exec(g.getAttribute("transform"));
    g.dataset.cx ||= String(+m[1] + +rect.getAttribute("width") / 2);
    g.dataset.cy ||= String(+m[2] + +rect.getAttribute("height") / 2);
    return [+g.dataset.cx, +g.dataset.cy];
  }

  // How large a drawing can be in the room, and the least it may be (below that its labels
  // or controls would overlap). Horizontal drawings get label and control bands in pixels.
  function plan(svg, rm, b) {
    const [, , w, h] = svg.getAttribute("viewBox").split(" ").map(Number);
    const gap = +svg.dataset.gap;
    const textPx = px("--net-text"), titlePx = px("--net-title");
    if (svg.dataset.variant === "vertical") {
      const floor = Math.max(textPx, titlePx) / 17.5; // its bands were made for text up to 17.5 units
      return { svg, fit: Math.min(rm.width / w, rm.height / h, MAX_SCALE), floor, top: 0, bottom: 0, w, h };
    }
    const top = b.ctlHeight ? b.ctlHeight + 6 : 6;
    const core = +svg.dataset.coreHeight;
    const lossBox = svg.querySelector(".loss-box");
    const lossX = lossBox ? lossCentre(lossBox)[0] : 0;
    const lossFit = lossBox ? Math.min((rm.width - b.lossHalf) / lossX, rm.width / (lossX + LOSS_BOX_MIN / 2)) : Infinity;
    // The labels under a column: title, count, activation, each as wide as the column's pitch
    // allows. A count too wide for it ("ニューロン 128 個" in Japanese) takes two lines.
    const layout = (lines, widest) => {
      const bottom = textPx * 1.2 + titlePx * 1.25 + textPx * (1.3 * lines) + 6; // the lowest values, then the lines
      const fit = Math.min(rm.width / w, lossFit, (rm.height - top - bottom) / core, MAX_SCALE);
      const floor = Math.max(0.5, (b.title + 10) / gap, (b.ctlWidth + 6) / gap, (widest + 10) / gap);
      return { fit, floor, bottom, wrap: lines === 3 };
    };
    const one = layout(2, b.count);
    const two = layout(3, b.countPart);
    const pick = one.fit >= one.floor || two.floor >= one.floor ? one : two;
    return { svg, ...pick, top, w: Math.max(w, lossX + LOSS_BOX_MIN / 2), h: core, lossX, lossHalf: b.lossHalf };
  }

  // Twice when the scale or the drawing changed: the bands are measured on the drawing shown, at
  // the text's size, which follows --k.
  function fit(again = true) {
    const rm = room();
    if (!rm.width) return;
    const before = root.style.getPropertyValue("--k");
    const b = bands(d.svg);
    // The vertical drawing is for narrow boxes (a phone held upright): it scrolls down the page.
    const narrow = rm.width < 600 && rm.height >= rm.width;
    const options = [d.svg, ...(spare?.content.querySelectorAll("svg") ?? [])]
      .filter((svg) => narrow || svg.dataset.variant !== "vertical")
      .map((svg) => plan(svg, rm, b));
    // A vertical drawing in a box that has stopped being narrow, with no other variant at
    // hand (none rendered yet): keep it rather than have nothing to show.
    if (!options.length) options.push(plan(d.svg, rm, b));
    // The largest drawing that needs no scrolling; else the standard one (scrolling sideways),
    // or on a narrow box the vertical one (scrolling down).
    const fitting = options.filter((o) => o.fit >= o.floor);
    const fallback = narrow ? "vertical" : "standard";
    const best = fitting.length ? fitting.reduce((a, o) => (o.fit > a.fit + 0.02 ? o : a))
      : options.find((o) => o.svg.dataset.variant === fallback) ?? options[0];
    const swapped = best.svg !== d.svg;
    if (swapped) swap(best.svg);
    apply(best);
    // Again when the drawing changed (its own labels were not the ones measured) or its scale did.
    if (again && (swapped || root.style.getPropertyValue("--k") !== before)) fit(false);
  }

  function swap(svg) {
    spare.content.append(d.svg);
    box.append(svg);
    window.htmx?.process(svg); // a variant from the <template> was never processed: its +/− buttons must post
    d = bind(svg);
    if (frame) update(frame, heat);
    root.dispatchEvent(new CustomEvent("net:swapped", { bubbles: true }));
  }

  function apply(p) {
    const s = Math.max(p.fit, p.floor);
    const k = 1 / s;
    root.style.setProperty("--k", k.toFixed(4));
    const svg = d.svg;
    if (svg.dataset.variant === "vertical") {
      svg.setAttribute("viewBox", `0 0 ${p.w} ${p.h}`);
      for (const fo of svg.querySelectorAll("foreignObject.col-ctl-fo")) { // on the title's line, at the right
        const fw = (px("--net-ctl-width") + 2 * px("--net-target") + 40) * k;
        fo.setAttribute("x", (p.w - 10 - fw).toFixed(1));
        fo.setAttribute("width", fw.toFixed(1));
        fo.setAttribute("height", ((px("--net-target") + 4) * k).toFixed(1));
      }
    } else {
      for (const label of countLabels(svg)) breakCount(label, p.wrap);
      // So crowded that counts are broken: the loss column drops its second name
      // (「交差エントロピー誤差」), which its box already gives ("交差エントロピー"), not to meet the output's.
      svg.classList.toggle("counts-broken", p.wrap);
      // The band above the nodes holds the controls, the band below the labels: in pixels.
      const y0 = +svg.dataset.coreTop - p.top * k;
      const labels = (+svg.dataset.coreTop + p.h + px("--net-text") * 1.2 * k).toFixed(1);
      for (const text of svg.querySelectorAll("text.col-labels")) text.setAttribute("y", labels);
      const w = Math.max(p.w, p.lossX + p.lossHalf * k); // room for the loss box at this scale
      svg.setAttribute("viewBox", `0 ${y0.toFixed(1)} ${w.toFixed(1)} ${(p.h + (p.top + p.bottom) * k).toFixed(1)}`);
      for (const fo of svg.querySelectorAll("foreignObject.col-ctl-fo")) {
        const cx = +fo.getAttribute("x") + +fo.getAttribute("width") / 2;
        const fw = (px("--net-ctl-width") || 120) * k, fh = (p.top - 4) * k;
        fo.setAttribute("x", (cx - fw / 2).toFixed(1));
        fo.setAttribute("y", (y0 + 2 * k).toFixed(1));
        fo.setAttribute("width", fw.toFixed(1));
        fo.setAttribute("height", Math.max(fh, 1).toFixed(1));
      }
    }
    const [, , vw, vh] = svg.getAttribute("viewBox").split(" ").map(Number);
    svg.style.width = `${(vw * s).toFixed(1)}px`;
    svg.style.height = `${(vh * s).toFixed(1)}px`;
    fitLossBox(svg, k);
    hideCrowdedValues(svg, s);
  }

  // A layer's count under its column: shown whole on one line, or broken at its first space
  // onto two ("ニューロン" / "128 個"). The loss column's name is not one: its room is lossHalf.
  function countLabels(svg) {
    return [...svg.querySelectorAll("g.column:not(.col-loss) tspan.count")];
  }

  function breakCount(label, broken) {
    const whole = (label.dataset.whole ??= label.textContent);
    const cut = whole.indexOf(" ");
    if (label.nextElementSibling?.classList.contains("count-rest")) label.nextElementSibling.remove();
    label.textContent = broken && cut > 0 ? whole.slice(0, cut) : whole;
    if (!broken || cut <= 0) return;
    const rest = document.createElementNS(SVG_NS, "tspan");
    rest.setAttribute("class", "col-sub count-rest");
    rest.setAttribute("x", label.getAttribute("x"));
    rest.setAttribute("dy", "1.3em");
    rest.textContent = whole.slice(cut + 1);
    label.after(rest);
  }

  function showLabelsWhole(svg) {
    for (const label of countLabels(svg)) breakCount(label, false);
    svg.classList.remove("counts-broken");
  }

  // A count's width in pixels, whole and as the wider of its two broken lines (measured whole).
  function countWidths(label) {
    const text = label.textContent, cut = text.indexOf(" ");
    const whole = label.getBoundingClientRect().width;
    const units = label.getComputedTextLength();
    if (cut <= 0 || !units) return { whole, part: whole };
    const first = label.getSubStringLength(0, cut), rest = label.getSubStringLength(cut + 1, text.length - cut - 1);
    return { whole, part: (whole * Math.max(first, rest)) / units };
  }

  // The loss layer's box grows around its two lines of text (their size is in pixels).
  function fitLossBox(svg, k) {
    const g = svg.querySelector(".loss-box");
    if (!g) return;
    const rect = g.querySelector("rect");
    const [name, value] = g.querySelectorAll("text");
    const [cx, cy] = lossCentre(g);
    const w = Math.max(LOSS_BOX_MIN, (name.getBoundingClientRect().width + 2 * LOSS_BOX_MARGIN_PX) * k);
    const h = Math.max(80, (px("--net-text") * 1.3 + px("--net-title") * 1.5 + 20) * k);
    rect.setAttribute("width", w.toFixed(1));
    rect.setAttribute("height", h.toFixed(1));
    for (const el of [name, value]) el.setAttribute("x", (w / 2).toFixed(1));
    name.setAttribute("y", (h * 0.38).toFixed(1));
    value.setAttribute("y", (h * 0.8).toFixed(1));
    g.setAttribute("transform", `translate(${(cx - w / 2).toFixed(1)},${(cy - h / 2).toFixed(1)})`);
  }

  // A column whose neurons are too close for a value under each keeps them for the tooltip
  // and the inspector, instead of printing them over the next neuron.
  function hideCrowdedValues(svg, s) {
    const need = px("--net-text") * 1.08; // digits, baseline 1em under the neuron: no descenders
    for (const col of svg.querySelectorAll("g.column")) {
      const groups = [...col.querySelectorAll("g.node")];
      let crowded = false;
      if (groups.length > 1) {
        const pos = groups.map((g) => /translate\(([-\d.]+),([-\d.]+)\)/.exec(g.getAttribute("transform")).slice(1).map(Number));
        const size = +(groups[0].querySelector(".frame, .dot")?.getBoundingClientRect().height ?? 0) / s;
        const vertical = svg.dataset.variant === "vertical";
        const pitch = vertical ? pos[1][0] - pos[0][0] : pos[1][1] - pos[0][1];
        crowded = vertical ? pitch * s < px("--net-text") * 3.2 : (pitch - size) * s < need;
      }
      col.classList.toggle("crowded", crowded);
    }
  }

  let pending = 0;
  const refit = () => { cancelAnimationFrame(pending); pending = requestAnimationFrame(fit); };
  const observer = new ResizeObserver(refit);
  observer.observe(box);
  observer.observe(document.body); // presentation mode and theme change the text's size
  fit();

  return {
    root, update, weightAt, fit,
    shapeVersion: +root.dataset.shapeVersion,
    get frame() { return frame; },
    get svg() { return d.svg; },
  };
}

function paintRect(canvas, bytes, w, h, lut) {
  const ctx = canvas.getContext("2d");
  const img = ctx.createImageData(w, h);
  const px = new Uint32Array(img.data.buffer);
  for (let k = 0; k < px.length; k++) px[k] = lut[bytes[k]];
  ctx.putImageData(img, 0, 0);
}

// The gradient view's key: one line a decade, as wide as the links draw it, with its value.
function drawGradScale(svg) {
  if (!svg) return;
  const [lo, hi] = GRAD_DECADES;
  const steps = hi - lo;
  svg.setAttribute("viewBox", `0 0 ${steps * 46 + 20} 30`);
  for (let k = 0; k <= steps; k++) {
    const e = lo + k, x = 10 + k * 46;
    const size = gradShare(10 ** e);
    const line = document.createElementNS(SVG_NS, "line");
    for (const [a, v] of [["x1", x], ["x2", x + 34], ["y1", 8], ["y2", 8]]) line.setAttribute(a, String(v));
    line.setAttribute("stroke", divergingCss(size));
    line.setAttribute("stroke-width", (0.5 + size * MAX_LINK_WIDTH).toFixed(2));
    const label = document.createElementNS(SVG_NS, "text");
    label.setAttribute("x", String(x + 17));
    label.setAttribute("y", "27");
    label.textContent = e === 0 ? "1" : `10${String(e).replace("-", "⁻").replace(/\d/g, (c) => "⁰¹²³⁴⁵⁶⁷⁸⁹"[c])}`;
    svg.append(line, label);
  }
}
