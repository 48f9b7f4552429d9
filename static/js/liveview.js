// The live view of a session, shared by the playground and the watch page: it owns the
// stream connection and hands every frame to the views (network, output plot, loss chart,
// metrics, inspector, forward pass, timeline). `session` carries the control token on the
// playground and is null on a watch page, which only looks.
import { createBoundaryView } from "./boundary.js";
import { createForward } from "./forward.js";
import { t } from "./i18n.js";
import { createInspector } from "./inspector.js";
import { createLossChart } from "./losschart.js";
import { createMetrics } from "./metrics.js";
import { createNetworkView } from "./network.js";
import { api } from "./session.js";
import { connectStream } from "./stream.js";
import { showDebugOverlay } from "./debug.js";
import { createDigitProbe } from "./digitpad.js";
import { createTimeline } from "./timeline.js";

const $ = (sel) => document.querySelector(sel);

// Epochs per frame actually reached while running: a tick trains for at most max_tick_ms,
// so 100× or 1000× on a big network is capped. Shown in the speed menu's caption when it is.
function speedOutput() {
  const caption = $(".field-epochs_per_frame .caption");
  if (!caption || $("#speed-reached")) return $("#speed-reached");
  const out = document.createElement("output"); // again after every swap of the panel
  out.id = "speed-reached";
  out.hidden = true;
  caption.append(" ", out);
  return out;
}

function createSpeedMeter() {
  const recent = []; // epochs gained per frame over the last frames while running
  let last = null;
  return {
    update(frame) {
      const out = speedOutput();
      const chosen = +($("#f-epochs_per_frame")?.value || 0);
      if (last !== null && frame.status === "running" && frame.epoch >= last) recent.push(frame.epoch - last);
      if (frame.status !== "running") recent.length = 0;
      if (recent.length > 30) recent.shift();
      last = frame.epoch;
      if (!out) return;
      const reached = recent.length >= 5 ? recent.reduce((a, b) => a + b, 0) / recent.length : null;
      out.hidden = reached === null || reached >= 0.8 * chosen;
      if (!out.hidden) out.textContent = t("hyper.speed_reached", { n: reached < 10 ? reached.toFixed(1) : Math.round(reached) });
    },
  };
}

export function createLiveView({ sid, session = null, toast, onStatus, onWatchers, onClickPoint, onConfig }) {
  const controls = session !== null;
  const call = (path, opts) => api(session, path, opts);
  let network = null;
  let backprop = false;
  let stream = null;
  let dataShapeVersion = -1;
  let refreshing = false;

  const layerName = (l) => $(`#network .column[data-layer="${l}"] .col-title`)?.textContent ?? "";
  const metrics = createMetrics();
  const chart = createLossChart($("#loss-chart"), $("#chart-tip"));
  const boundary = createBoundaryView($("#boundary"), { showTest: $("#show-test"), discretize: $("#discretize"), onClickPoint });
  const inspector = createInspector($("#inspector"), {
    layerName,
    weightAt: (layer, i, j) => network.weightAt(layer, i, j),
    onEditBias: controls ? ({ layer, j, value }) => call("/params", { body: { layer, j, value } }).catch((e) => toast(e.message)) : null,
  });
  const forward = createForward($("#forward-box"), { network: () => network, layerName });
  const digits = createDigitProbe($(".digit-probe"), {
    setProbe: (body) => (controls ? call("/probe", { method: "PUT", body }).catch((e) => toast(e.message)) : null),
  });
  const speed = createSpeedMeter();
  const timeline = controls ? createTimeline(document, { sessionId: () => sid, api: call, onError: (e) => toast(e.message) }) : null;

  function makeNetwork() {
    network = createNetworkView($("#network"), {
      onPreview: (canvas, label) => {
        boundary.preview(canvas);
        const caption = $("#plot-caption");
        caption.hidden = !canvas;
        caption.textContent = label || "";
      },
      onEditWeight: controls ? ({ layer, i, j, value }) => call("/params", { body: { layer, i, j, value } }).catch((e) => toast(e.message)) : null,
      // Open the inspector on the half of the drawing away from the chosen neuron, not over it.
      onInspect: (what, x) => {
        const panel = $("#network").getBoundingClientRect();
        inspector.open(what, network.frame, x < panel.left + panel.width / 2 ? "right" : "left");
      },
      gradients: () => backprop,
    });
    return network;
  }
  makeNetwork();

  // After a swap of #network (htmx, or a refetch): bind a new view to it, and paint the
  // newest frame if it belongs to this drawing: a paused session sends no further frame,
  // and the new drawing would stay blank until the next one.
  let latest = null; // [frame, heat] last received
  let staleTimer = 0;
  let configVersion = null; // the config_version of the newest frame
  function networkSwapped() {
    makeNetwork();
    if (latest && latest[0].shape_version === network.shapeVersion) network.update(...latest);
    if (forward.active) forward.update(null);
  }

  async function refreshNetwork() {
    if (refreshing) return;
    refreshing = true;
    try {
      const res = await fetch(`/ui/sessions/${sid}/network?controls=${controls}`, { headers: { "X-Lang": document.body.dataset.lang } });
      if (!res.ok) return;
      const holder = document.createElement("div");
      holder.innerHTML = await res.text();
      $("#network").replaceWith(holder.querySelector("#network"));
      const captions = holder.querySelector("#captions");
      if (captions) $("#captions")?.replaceWith(captions);
      if (controls) htmx.process($("#network"));
      networkSwapped();
    } finally {
      refreshing = false;
    }
  }

  async function refreshData(shapeVersion) {
    if (shapeVersion === dataShapeVersion) return;
    dataShapeVersion = shapeVersion;
    const res = await fetch(`/api/sessions/${sid}/data`);
    if (!res.ok) return;
    const data = await res.json();
    const plane = $("#network").dataset.plane === "1";
    $(".plot-area").hidden = !plane;
    $(".digit-probe").hidden = plane; // digits: pick or draw the probe instead
    if (plane) boundary.setData(data);
    else digits.setData(data);
  }

  function onFrame(frame, heat) {
    latest = [frame, heat];
    if (frame.shape_version > network.shapeVersion) refreshNetwork(); // changed elsewhere: redraw, then follow
    else if (frame.shape_version === network.shapeVersion) network.update(frame, heat);
    else {
      // An older shape: a frame still on its way after this page's own change, or a drawing
      // that belongs to another session's shape. The drawing must paint: if no frame of its
      // shape follows soon (a paused session sends no more), fetch the session's own drawing.
      clearTimeout(staleTimer);
      staleTimer = setTimeout(() => {
        if (latest && latest[0].shape_version !== network.shapeVersion) refreshNetwork();
      }, 400);
    }
    refreshData(frame.shape_version);
    if (frame.config_version !== configVersion) {
      const first = configVersion === null;
      configVersion = frame.config_version;
      onConfig?.(frame, first); // the settings changed (here or on another page): show them
    }
    speed.update(frame);
    digits.update(frame);
    metrics.update(frame);
    const viewing = frame.timeline?.viewing ?? null;
    if (viewing === null) chart.update(frame);
    chart.mark(viewing);
    boundary.update(frame, heat);
    inspector.update(frame);
    forward.update(frame);
    timeline?.update(frame);
    onStatus?.(frame.status);
  }

  const follow = (id) => location.replace(`/s/${encodeURIComponent(id)}${location.search}`);

  function connect() {
    stream?.close();
    stream = connectStream(sid, {
      gradients: backprop,
      watch: !controls,
      onHistory: (rows) => chart.setHistory(rows),
      onFrame,
      onWatchers,
      // The lesson step and its progress (static/js/lessons.js listens, on every kind of page).
      onLesson: (detail) => document.dispatchEvent(new CustomEvent("mlp:lesson", { detail })),
      onClosed: (info) => {
        // A watcher follows the teacher to the new session.
        if (info.reason === "moved" && info.successor && !session) follow(info.successor);
        else toast(t("error.closed", { reason: t(`closed.${info.reason}`) }));
      },
      onError: async () => {
        // A watcher who was away when the teacher moved on: the ended session names where to go.
        if (!session) {
          const res = await fetch(`/api/sessions/${encodeURIComponent(sid)}`).catch(() => null);
          const successor = res?.status === 410 ? (await res.json().catch(() => ({}))).params?.successor : null;
          if (successor) { follow(successor); return; }
        }
        toast(t("error.stream"));
      },
    });
  }

  // Backprop view: frames carry gradients only while it is on (a new stream asks for them).
  $("#toggle-grad")?.addEventListener("change", (ev) => {
    backprop = ev.target.checked;
    $("#grad-legend").hidden = !backprop;
    if (!backprop) makeNetwork(); // restore the normal frames and colours
    connect();
  });
  // Captions can be hidden (remembered); presentation mode always shows them.
  const captions = $("#toggle-captions");
  if (captions) {
    captions.checked = localStorage.getItem("mlp:captions") !== "off";
    const apply = () => document.body.classList.toggle("no-captions", !captions.checked);
    captions.addEventListener("change", () => { localStorage.setItem("mlp:captions", captions.checked ? "on" : "off"); apply(); });
    apply();
  }
  $("#btn-forward")?.addEventListener("click", () => forward.open());
  if (new URLSearchParams(location.search).get("debug") === "1") showDebugOverlay(() => stream?.stats);

  return {
    connect,
    disconnect: () => { stream?.close(); stream = null; }, // nobody looks (presence.js)
    rebind: (id) => { sid = id; }, // the page moved to another session: a reader's fork (presence.js)
    networkSwapped,
    get network() { return network; },
    // Keys the live view takes first: ←/→/Escape step or close the forward pass; otherwise
    // Escape closes the inspector.
    key: (ev) => {
      if (forward.key(ev)) return true;
      if (ev.key === "Escape" && inspector.target) { inspector.close(); return true; }
      return false;
    },
    // The theme or the palette changed: redraw what was drawn with the old colours.
    repaint: () => {
      const [frame, heat] = latest ?? [];
      if (network?.frame) network.update(network.frame, network.frame === frame ? heat : null);
      chart.redraw();
      metrics.repaint();
      boundary.repaint();
    },
  };
}
