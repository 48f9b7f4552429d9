// The forward pass, step by step: each column lights up in turn (input → hidden → … →
// output → loss) with a caption in the seed article's words and the probe's live numbers.
// Prev/Next buttons and ←/→ step it; Escape closes it.
import { formatNumber } from "./format.js";
import { t } from "./i18n.js";

export function createForward(box, { network, layerName }) {
  const caption = box.querySelector("#forward-caption");
  const stageLabel = box.querySelector("#fwd-stage");
  let stage = -1;
  let frame = null;

  const columns = () => [...network().root.querySelectorAll("g.column")];

  function describe(k, cols) {
    const kind = cols[k].classList.contains("col-input") ? "input"
      : cols[k].classList.contains("col-hidden") ? "hidden"
      : cols[k].classList.contains("col-output") ? "output" : "loss";
    const layer = +cols[k].dataset.layer;
    const values = (acts) => acts.slice(0, 4).map((v) => formatNumber(v, 2)).join(", ") + (acts.length > 4 ? ", …" : "");
    if (!frame) return t(`fwd.${kind}`, {});
    if (kind === "input") return t("fwd.input", { values: values(frame.layers[0].activations) });
    if (kind === "hidden") {
      const l = frame.layers[layer];
      return t("fwd.hidden", { layer: layerName(layer), act: t("act." + l.activation), values: values(l.activations) });
    }
    const classification = frame.problem === "classification";
    if (kind === "output") {
      const v = { values: values(frame.layers[frame.layers.length - 1].activations) };
      return classification ? t("fwd.output", v) : t("fwd.output_regression", v);
    }
    const v = { value: formatNumber(frame.loss_layer?.probe, 3), target: frame.loss_layer?.target ?? "–" };
    return classification ? t("fwd.loss", v) : t("fwd.loss_regression", v);
  }

  function show(k) {
    const cols = columns();
    stage = Math.max(0, Math.min(cols.length - 1, k));
    cols.forEach((c, i) => {
      c.classList.toggle("lit", i === stage);
      c.classList.toggle("dim", i !== stage);
      c.classList.toggle("passed", i < stage);
    });
    network().root.classList.add("forwarding");
    // Links flowing into the lit column animate.
    const into = +cols[stage].dataset.layer - 1;
    network().root.querySelectorAll("path.link").forEach((p) => p.classList.toggle("flow", +p.dataset.l === into));
    caption.textContent = describe(stage, cols);
    stageLabel.textContent = `${stage + 1} / ${cols.length}`;
    box.querySelector("#fwd-prev").disabled = stage === 0;
    box.querySelector("#fwd-next").disabled = stage === cols.length - 1;
  }

  function open() {
    box.hidden = false;
    show(0);
    box.querySelector("#fwd-next").focus();
  }

  function close() {
    box.hidden = true;
    stage = -1;
    const root = network().root;
    root.classList.remove("forwarding");
    root.querySelectorAll("g.column").forEach((c) => c.classList.remove("lit", "dim", "passed"));
    root.querySelectorAll("path.link.flow").forEach((p) => p.classList.remove("flow"));
  }

  box.querySelector("#fwd-prev").addEventListener("click", () => show(stage - 1));
  box.querySelector("#fwd-next").addEventListener("click", () => show(stage + 1));
  box.querySelector("#fwd-close").addEventListener("click", close);

  return {
    open, close,
    get active() { return stage >= 0; },
    // Keys while active: ←/→ step the pass (not training), Escape closes.
    key(ev) {
      if (stage < 0) return false;
      if (ev.key === "ArrowRight") show(stage + 1);
      else if (ev.key === "ArrowLeft") show(stage - 1);
      else if (ev.key === "Escape") close();
      else return false;
      return true;
    },
    update(f) {
      frame = f;
      if (stage >= 0) show(stage); // live numbers, and a redrawn network keeps its highlight
    },
  };
}
