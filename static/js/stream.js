// The one owner of the EventSource. Frames are applied at most once per display frame
// (requestAnimationFrame): if several arrive in between, only the newest is drawn.
// Heatmaps are decoded off the paint path; one decode at a time, newest frame wins.
import { decodeHeatmaps } from "./heatmap.js";

export function connectStream(sid, { fps = 30, gradients = false, onFrame, onHistory, onWatchers, onClosed, onError }) {
  const url = `/api/sessions/${encodeURIComponent(sid)}/events?fps=${fps}${gradients ? "&gradients=true" : ""}`;
  const source = new EventSource(url);
  let latest = null; // newest frame received, not yet decoded
  let decoding = false;
  let ready = null; // newest decoded frame waiting for paint
  let scheduled = false;
  const stats = { received: 0, bytes: 0, renderMs: [], since: performance.now() };

  function schedule() {
    if (scheduled) return;
    scheduled = true;
    requestAnimationFrame(() => {
      scheduled = false;
      if (!ready) return;
      const item = ready;
      ready = null;
      const t0 = performance.now();
      onFrame(item.frame, item.heat);
      stats.renderMs.push(performance.now() - t0);
      if (stats.renderMs.length > 120) stats.renderMs.shift();
    });
  }

  async function pump() {
    if (decoding) return;
    decoding = true;
    while (latest) {
      const frame = latest;
      latest = null;
      let heat = null;
      if (frame.heatmaps) {
        const units = frame.layers.map((l) => l.units);
        try {
          heat = await decodeHeatmaps(frame.heatmaps, units, frame.problem);
        } catch (err) {
          console.warn("heatmap decode failed", err);
        }
      }
      ready = { frame, heat };
      schedule();
    }
    decoding = false;
  }

  source.addEventListener("frame", (ev) => {
    stats.received += 1;
    stats.bytes = ev.data.length;
    latest = JSON.parse(ev.data);
    pump();
  });
  source.addEventListener("history", (ev) => onHistory?.(JSON.parse(ev.data)));
  source.addEventListener("watchers", (ev) => onWatchers?.(JSON.parse(ev.data).count));
  source.addEventListener("closed", (ev) => {
    source.close();
    onClosed?.(JSON.parse(ev.data));
  });
  source.onerror = () => {
    // EventSource reconnects by itself while the server is reachable; a closed source
    // (404/410 on reconnect) means the session is gone.
    if (source.readyState === EventSource.CLOSED) onError?.();
  };
  return { close: () => source.close(), stats };
}
