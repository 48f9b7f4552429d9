// The probe for digits: step through the test samples, or draw a digit on an 8×8 pad
// (pixels in [0, 1], like the data). Either becomes the probe every neuron shows.
import { INK } from "./colors.js";
import { t } from "./i18n.js";

export function createDigitProbe(box, { setProbe }) {
  const label = box.querySelector("#sample-label");
  const pad = box.querySelector("#digit-pad");
  const padLabel = box.querySelector("#pad-label");
  let test = null; // {x: [[64 pixels]…], y: […]}
  let index = 0;
  const pixels = new Float32Array(64);

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
    let drawing = false;
    const stroke = (ev) => {
      const r = pad.getBoundingClientRect();
      const col = Math.floor(((ev.clientX - r.left) / r.width) * 8);
      const row = Math.floor(((ev.clientY - r.top) / r.height) * 8);
      if (col < 0 || col > 7 || row < 0 || row > 7) return;
      const k = row * 8 + col;
      pixels[k] = ev.shiftKey ? 0 : Math.min(1, pixels[k] + 0.6);
      paint();
    };
    pad.addEventListener("pointerdown", (ev) => { drawing = true; pad.setPointerCapture(ev.pointerId); stroke(ev); });
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
      index = Math.min(index, Math.max(0, test.x.length - 1));
      if (test.x.length) label.textContent = t("digits.sample_n", { n: index + 1, total: test.x.length, y: test.y[index] });
    },
  };
}
