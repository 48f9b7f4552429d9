// The ?debug=1 overlay: frames per second received, time to apply a frame to the page
// (median of the last 120, measured with the Performance API), heatmap decode time and
// bytes per frame. Updated twice a second from the stream's own figures.
const median = (xs) => {
  if (!xs.length) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s[s.length >> 1];
};

export function showDebugOverlay(getStats) {
  const box = document.createElement("pre");
  box.className = "debug-overlay";
  box.setAttribute("aria-hidden", "true");
  document.body.append(box);
  setInterval(() => {
    const s = getStats();
    if (!s) return;
    const recent = s.arrivals.filter((t) => t > performance.now() - 2000);
    box.textContent = [
      `frames/s received  ${(recent.length / 2).toFixed(1)}`,
      `apply ms (median)  ${median(s.renderMs).toFixed(2)}`,
      `decode ms (median) ${median(s.decodeMs).toFixed(2)}`,
      `bytes per frame    ${s.bytes.toLocaleString()}`,
      `frames total       ${s.received}`,
    ].join("\n");
  }, 500);
}
