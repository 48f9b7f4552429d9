// The neuron inspector: a neuron as "linear transformation + activation function", written
// out with the live numbers of the probe input, and a small plot of f with (z, a) marked.
// For the output layer it shows softmax turning scores into probabilities; for the loss
// layer, −log p(true class) (or ½(ŷ − y)² for regression). Re-rendered on every frame.
import { activationTable } from "./activations.js";
import { ACTIVATION_PARAMS, ACTIVATIONS } from "./constants.js";
import { formatNumber } from "./format.js";
import { neuronName, t } from "./i18n.js";

const SVG = "http://www.w3.org/2000/svg";
const MAX_TERMS = 6; // beyond this, the largest terms are shown and the rest summed

// name → {f, formula}: the server's activations, with f for the plot.
const ACTIVATION = activationTable(ACTIVATIONS, ACTIVATION_PARAMS);

const num = (x, d = 3) => formatNumber(x, d);
const paren = (x) => (x < 0 ? `(${num(x)})` : num(x));

// onEditBias({layer, j, value}): set the neuron's bias (the playground; absent on a watch page).
export function createInspector(box, { layerName, weightAt, onEditBias }) {
  const title = box.querySelector("#inspector-title");
  const maths = box.querySelector("#inspector-maths");
  const plot = box.querySelector("#inspector-plot");
  let target = null; // {layer, unit} or {loss: true}

  box.querySelector("#inspector-close").addEventListener("click", close);

  function line(label, formula, value, cls = "") {
    const row = document.createElement("div");
    row.className = `eq ${cls}`;
    if (label) {
      const l = document.createElement("span");
      l.className = "eq-label";
      l.textContent = label;
      row.append(l);
    }
    const f = document.createElement("span");
    f.className = "eq-formula mono";
    f.textContent = formula;
    row.append(f);
    if (value !== undefined) {
      const v = document.createElement("output");
      v.className = "eq-value mono";
      v.textContent = value;
      row.append(v);
    }
    maths.append(row);
    return row;
  }

  function neuron(frame, l, j) {
    const layer = frame.layers[l];
    const prev = frame.layers[l - 1];
    const isOut = l === frame.layers.length - 1;
    title.textContent = neuronName(layerName(l), j, isOut && frame.problem === "classification");
    const x = prev.activations;
    const terms = x.map((xi, i) => ({ i, w: weightAt(layer, i, j) ?? 0, x: xi ?? 0 }));
    const b = layer.biases?.[j] ?? 0;
    const z = layer.z?.[j];
    const a = layer.activations[j];
    const shown = terms.length > MAX_TERMS
      ? [...terms].sort((p, q) => Math.abs(q.w * q.x) - Math.abs(p.w * p.x)).slice(0, MAX_TERMS).sort((p, q) => p.i - q.i)
      : terms;
    const rest = terms.filter((p) => !shown.includes(p));
    const sub = (i) => String(i + 1).replace(/\d/g, (d) => "₀₁₂₃₄₅₆₇₈₉"[d]);
    line(t("inspect.linear"), `z = Σ wᵢxᵢ + b`);
    let written = shown.map((p) => `${paren(p.w)}·${paren(p.x)}`).join(" + ");
    if (rest.length) {
      written += ` + ${t("inspect.more_terms", { n: rest.length, sum: num(rest.reduce((s, p) => s + p.w * p.x, 0)) })}`;
    }
    line("", `z = ${written} + ${paren(b)}`);
    line("", "z =", num(z, 4), "z");
    const legend = shown.map((p) => `w${sub(p.i)} = ${num(p.w, 4)}, x${sub(p.i)} = ${num(p.x, 4)}`).join("; ");
    const detail = line("", legend, undefined, "terms");
    detail.dataset.b = String(b);
    if (onEditBias) biasEditor(l - 1, j, b);
    if (isOut && frame.problem === "classification") {
      const zs = layer.z.map((v) => v ?? 0);
      const denom = zs.map((v) => `e^${paren(v)}`).join(" + ");
      line(t("inspect.softmax"), `p${sub(j)} = e^z${sub(j)} / Σ e^zₖ = e^${paren(z)} / (${denom})`, num(a, 4), "a");
      drawPlot(null, z, a);
    } else {
      const act = isOut ? "linear" : layer.activation;
      const known = ACTIVATION.get(act);
      // The formula uses the function's own name (tanh, relu…), as written in maths, and
      // then says what it computes, unless that is the name again (tanh(z)).
      line(t("inspect.activation") + ": " + t("act." + act), known && known.formula !== `${act}(z)` ? `a = ${act}(z) = ${known.formula}` : `a = ${act}(z)`);
      line("", `a = ${act}(${num(z, 3)})`, num(a, 4), "a");
      drawPlot(known?.f, z, a);
    }
  }

  // The bias, editable: the change goes to the live session and every viewer sees it.
  let editing = false;
  function biasEditor(layer, j, b) {
    const form = document.createElement("form");
    form.className = "bias-edit";
    const label = document.createElement("label");
    label.textContent = t("inspect.bias") + " b = ";
    const input = document.createElement("input");
    input.type = "number";
    input.step = "any";
    input.className = "mono";
    input.value = (+b).toFixed(4);
    input.addEventListener("focus", () => (editing = true));
    input.addEventListener("blur", () => (editing = false));
    label.append(input);
    const button = document.createElement("button");
    button.type = "submit";
    button.textContent = t("inspect.set_bias");
    form.append(label, button);
    form.addEventListener("submit", (ev) => {
      ev.preventDefault();
      const value = parseFloat(input.value);
      if (Number.isFinite(value)) onEditBias({ layer, j, value });
      editing = false;
      input.blur();
    });
    maths.append(form);
  }

  function loss(frame) {
    const L = frame.loss_layer;
    title.textContent = t("layer.loss");
    const out = frame.layers[frame.layers.length - 1].activations;
    if (L.target === undefined || L.target === null) {
      line("", t("inspect.no_target"));
    } else if (frame.problem === "classification") {
      line(t("inspect.true_class"), `y = ${L.target}`);
      line(t("loss.cross_entropy.short"), `L = −log p(y) = −log ${num(out[L.target], 4)}`, num(L.probe, 4), "loss");
    } else {
      line(t("inspect.target"), `y = ${num(L.target, 4)}`);
      line(t("loss.mse.short"), `L = ½(ŷ − y)² = ½(${num(out[0], 4)} − ${paren(L.target)})²`, num(L.probe, 4), "loss");
    }
    line(t("inspect.mean_loss"), `${t("output.train_loss")} = ${num(L.train, 4)}, ${t("output.test_loss")} = ${num(L.test, 4)}`);
    drawPlot(null);
  }

  function drawPlot(f, z, a) {
    plot.replaceChildren();
    plot.toggleAttribute("hidden", !f); // an SVG element has no .hidden property
    if (!f) return;
    const W = 160, H = 110, pad = 8, lo = -5, hi = 5;
    const ys = [];
    for (let k = 0; k <= 100; k++) ys.push(f(lo + ((hi - lo) * k) / 100));
    const ymin = Math.min(-1, ...ys), ymax = Math.max(1, ...ys);
    const X = (v) => pad + ((v - lo) / (hi - lo)) * (W - 2 * pad);
    const Y = (v) => H - pad - ((v - ymin) / (ymax - ymin)) * (H - 2 * pad);
    const el = (name, attrs) => {
      const e = document.createElementNS(SVG, name);
      for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, String(v));
      plot.append(e);
      return e;
    };
    el("line", { x1: X(lo), y1: Y(0), x2: X(hi), y2: Y(0), class: "axis" });
    el("line", { x1: X(0), y1: Y(ymin), x2: X(0), y2: Y(ymax), class: "axis" });
    el("polyline", { points: ys.map((y, k) => `${X(lo + ((hi - lo) * k) / 100).toFixed(1)},${Y(y).toFixed(1)}`).join(" "), class: "curve" });
    if (Number.isFinite(z) && Number.isFinite(a)) {
      const zc = Math.max(lo, Math.min(hi, z)), ac = Math.max(ymin, Math.min(ymax, a));
      el("line", { x1: X(zc), y1: Y(0), x2: X(zc), y2: Y(ac), class: "guide" });
      el("circle", { cx: X(zc), cy: Y(ac), r: 4, class: "point" });
    }
  }

  function render(frame) {
    if (!target || !frame || editing) return; // don't redraw under someone typing a bias
    maths.replaceChildren();
    if (target.loss) loss(frame);
    else if (target.layer < frame.layers.length && target.unit < frame.layers[target.layer].units) {
      neuron(frame, target.layer, target.unit);
    } else close();
  }

  function open(what, frame, side = "left") {
    target = what;
    box.classList.toggle("dock-right", side === "right");
    box.hidden = false;
    render(frame);
  }

  function close() {
    target = null;
    box.hidden = true;
  }

  return { open, close, update: render, get target() { return target; } };
}
