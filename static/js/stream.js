// The one owner of the EventSource. Frames are applied at most once per display frame
// (requestAnimationFrame): if several arrive in between, only the newest is drawn.
// Heatmaps are decoded off the paint path; one decode at a time, newest frame wins.
import { decodeHeatmaps } from "./heatmap.js";

// Without `fps` the server picks its default (30, or its MAX_FPS when lower).
// `watch`: a read-only viewer's stream, which any node of a cluster may serve (deploy/nginx.conf).
export function connectStream(sid, { fps = null, gradients = false, watch = false, onFrame, onHistory, onWatchers, onLesson, onClosed, onError }) {
  const query = new URLSearchParams();
  if (fps !== null) query.set("fps", String(fps));
  if (gradients) query.set("gradients", "true");
  if (watch) query.set("watch", "1");
  const url = `/api/sessions/${encodeURIComponent(sid)}/events?${query}`;
  const source = new EventSource(url);
  let latest = null; // newest frame received, not yet decoded
  let decoding = false;
  let ready = null; // newest decoded frame waiting for paint
  let scheduled = false;
  // Figures for the ?debug=1 overlay and for benchmarks (benchmarks/browser.py reads the
  // "mlp:apply" measures through the Performance API). Bounded: the last 120 of each.
  const stats = { received: 0, bytes: 0, renderMs: [], decodeMs: [], arrivals: [] };
  const keep = (list, v) => { list.push(v); if (list.length > 120) list.shift(); };

  function schedule() {
    if (scheduled) return;
    scheduled = true;
    requestAnimationFrame(() => {
      scheduled = false;
      if (!ready) return;
      const item = ready;
      ready = null;
      performance.mark("mlp:apply-start");
      onFrame(item.frame, item.heat);
      const m = performance.measure("mlp:apply", "mlp:apply-start");
      keep(stats.renderMs, m.duration);
      if (performance.getEntriesByName("mlp:apply").length > 500) performance.clearMeasures("mlp:apply");
      performance.clearMarks("mlp:apply-start");
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
          const t0 = performance.now();
          heat = await decodeHeatmaps(frame.heatmaps, units, frame.problem);
          keep(stats.decodeMs, performance.now() - t0);
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
    keep(stats.arrivals, performance.now());
    latest = JSON.parse(ev.data);
    pump();
  });
  source.addEventListener("history", (ev) => onHistory?.(JSON.parse(ev.data)));
  source.addEventListener("watchers", (ev) => onWatchers?.(JSON.parse(ev.data).count));
  source.addEventListener("lesson", (ev) => onLesson?.(JSON.parse(ev.data))); // the step shown, its progress
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
