// The probe for digits: step through the test samples, or draw a digit on an 8×8 pad
// (pixels in [0, 1], like the data). Either becomes the probe every neuron shows. The label
// and the pad always show the session's probe as the stream reports it, so label, image and
// network name the same sample (on a watch page, after a reload, and before ◀ or ▶).
import { INK } from "./colors.js";
import { t } from "./i18n.js";

export function createDigitProbe(box, { setProbe }) {
  const label = box.querySelector("#sample-label");
  const pad = box.querySelector("#digit-pad");
  const padLabel = box.querySelector("#pad-label");
  let test = null; // {x: [[64 pixels]…], y: […]}
  let train = null;
  let index = 0;
  let probe = null; // the session's probe, from the newest frame
  let drawing = false;
  let showingSample = false; // the pad shows the probe's sample, not a drawing of one's own
  const pixels = new Float32Array(64);

  // Frames carry the probe rounded to 4 significant digits; the data's pixels are k/16.
  const same = (a, b) => a.length === b.length && a.every((v, k) => Math.abs(v - b[k]) < 1e-3);

  // The label (and the pad's image) for the session's probe: which test sample it is, a
  // training sample, or a drawing.
  function describe() {
    if (!test || !probe || drawing) return;
    if (!(test.x[index] && same(test.x[index], probe))) {
      const found = test.x.findIndex((x) => same(x, probe));
      if (found >= 0) index = found;
    }
    if (test.x[index] && same(test.x[index], probe)) {
      label.textContent = t("digits.sample_n", { n: index + 1, total: test.x.length, y: test.y[index] });
    } else {
      const k = train ? train.x.findIndex((x) => same(x, probe)) : -1;
      label.textContent = k >= 0 ? t("digits.train_sample", { y: train.y[k] }) : t("digits.drawn");
    }
    if (pad && !same(Array.from(pixels), probe)) {
      pixels.set(probe);
      showingSample = true;
      paint();
    }
  }

  function showSample() {
    if (!test?.x.length) return;
    label.textContent = t("digits.sample_n", { n: index + 1, total: test.x.length, y: test.y[index] });
    setProbe({ x: test.x[index] });
  }
  const move = (delta) => {
    if (!test?.x.length) return; // the data has not arrived yet
    index = (index + delta + test.x.length) % test.x.length;
    showSample();
  };
  box.querySelector("#sample-prev").addEventListener("click", () => move(-1));
  box.querySelector("#sample-next").addEventListener("click", () => move(1));

  function paint() {
    const ctx = pad.getContext("2d");
    const img = ctx.createImageData(8, 8);
    for (let k = 0; k < 64; k++) {
      // Ink is dark; blank pixels stay transparent so the pad's grid shows through.
      img.data.set([...INK, Math.round(255 * pixels[k])], k * 4);
    }
    ctx.putImageData(img, 0, 0);
  }

  if (pad) {
    padLabel.replaceChildren(...Array.from({ length: 10 }, (_, d) => new Option(String(d), String(d))));
    const stroke = (ev) => {
      const r = pad.getBoundingClientRect();
      const col = Math.floor(((ev.clientX - r.left) / r.width) * 8);
      const row = Math.floor(((ev.clientY - r.top) / r.height) * 8);
      if (col < 0 || col > 7 || row < 0 || row > 7) return;
      const k = row * 8 + col;
      pixels[k] = ev.shiftKey ? 0 : Math.min(1, pixels[k] + 0.6);
      paint();
    };
    pad.addEventListener("pointerdown", (ev) => {
      if (showingSample) pixels.fill(0); // a drawing starts on a blank pad, not over the sample
      showingSample = false;
      drawing = true;
      pad.setPointerCapture(ev.pointerId);
      stroke(ev);
    });
    pad.addEventListener("pointermove", (ev) => { if (drawing) stroke(ev); });
    const finish = () => {
      if (!drawing) return;
      drawing = false;
      label.textContent = t("digits.drawn");
      setProbe({ x: Array.from(pixels), snap: false, label: +padLabel.value });
    };
    pad.addEventListener("pointerup", finish);
    pad.addEventListener("pointercancel", finish);
    padLabel.addEventListener("change", () => setProbe({ x: Array.from(pixels), snap: false, label: +padLabel.value }));
    box.querySelector("#pad-clear").addEventListener("click", () => { pixels.fill(0); paint(); });
    paint();
  }

  return {
    setData(data) {
      test = data.test;
      train = data.train;
      index = Math.min(index, Math.max(0, test.x.length - 1));
      describe();
    },
    update(frame) {
      if (frame.probe?.x?.length !== pixels.length) return; // 2-D data: the plot shows the probe
      if (probe && same(probe, frame.probe.x)) return;
      probe = frame.probe.x;
      describe();
    },
  };
}
