// Export the network drawing as a standalone SVG or PNG file.
// The live SVG holds canvases (heatmaps, weight matrices) inside foreignObject and takes
// its look from the stylesheet; an exported file must carry both itself, so canvases
// become <image> elements and the styles that matter are copied onto each element.
import { PAPER, css } from "./colors.js";

const STYLE_PROPS = ["fill", "fill-opacity", "stroke", "stroke-width", "stroke-opacity", "opacity", "font-size",
  "font-family", "font-weight", "font-style", "text-anchor", "dominant-baseline"];

export function figureSvg(svg) {
  const clone = svg.cloneNode(true);
  clone.setAttribute("xmlns", "http://www.w3.org/2000/svg");
  const [, , w, h] = svg.getAttribute("viewBox").split(" ").map(Number);
  clone.setAttribute("width", String(w));
  clone.setAttribute("height", String(h));
  // Copy computed styles (source and clone have the same element order).
  const src = [svg, ...svg.querySelectorAll("*")];
  const dst = [clone, ...clone.querySelectorAll("*")];
  src.forEach((el, k) => {
    if (!(el instanceof SVGElement)) return;
    const cs = getComputedStyle(el);
    // Through the CSSOM: our CSP forbids setting style attributes, not style properties.
    for (const p of STYLE_PROPS) dst[k].style.setProperty(p, cs.getPropertyValue(p));
  });
  // Canvases → images; controls (HTML in foreignObject) are dropped.
  const fos = [...svg.querySelectorAll("foreignObject")];
  [...clone.querySelectorAll("foreignObject")].forEach((fo, k) => {
    const canvas = fos[k].querySelector("canvas");
    if (!canvas) { fo.remove(); return; }
    const img = document.createElementNS("http://www.w3.org/2000/svg", "image");
    for (const a of ["x", "y", "width", "height"]) if (fo.hasAttribute(a)) img.setAttribute(a, fo.getAttribute(a));
    img.setAttribute("href", canvas.toDataURL("image/png"));
    img.setAttribute("preserveAspectRatio", "none");
    if (canvas.classList.contains("wmatrix") || canvas.classList.contains("cells") || canvas.classList.contains("digit")) {
      img.style.setProperty("image-rendering", "pixelated");
    }
    fo.replaceWith(img);
  });
  clone.querySelectorAll("title").forEach((t) => t.remove());
  const background = document.createElementNS("http://www.w3.org/2000/svg", "rect");
  background.setAttribute("width", "100%");
  background.setAttribute("height", "100%");
  background.setAttribute("fill", getComputedStyle(document.body).getPropertyValue("--panel") || css(PAPER));
  clone.insertBefore(background, clone.firstChild);
  return { text: new XMLSerializer().serializeToString(clone), width: w, height: h };
}

function download(blob, name) {
  const url = URL.createObjectURL(blob);
  const a = document.createElement("a");
  a.href = url;
  a.download = name;
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 1000);
}

export function downloadSvg(svg, name = "mlp-network.svg") {
  download(new Blob([figureSvg(svg).text], { type: "image/svg+xml" }), name);
}

export async function downloadPng(svg, name = "mlp-network.png", scale = 2) {
  const { text, width, height } = figureSvg(svg);
  const url = URL.createObjectURL(new Blob([text], { type: "image/svg+xml" }));
  try {
    const img = new Image();
    img.src = url;
    await img.decode();
    const canvas = document.createElement("canvas");
    canvas.width = width * scale;
    canvas.height = height * scale;
    canvas.getContext("2d").drawImage(img, 0, 0, canvas.width, canvas.height);
    const blob = await new Promise((resolve) => canvas.toBlob(resolve, "image/png"));
    download(blob, name);
  } finally {
    URL.revokeObjectURL(url);
  }
}
