// Entry point of the playground page: opens the session, wires the controls, and hands
// every frame from the stream to the views (network, output plot, loss chart, numbers).
import { createBoundaryView } from "./boundary.js";
import { errorText, t } from "./i18n.js";
import { createLossChart } from "./losschart.js";
import { createNetworkView } from "./network.js";
import { createNumbers } from "./numbers.js";
import { api, openSession, wireHtmx } from "./session.js";
import { connectStream } from "./stream.js";
import { wireChrome } from "./chrome.js";

const $ = (sel) => document.querySelector(sel);
const workspace = $("#workspace");

function toast(message, kind = "error") {
  const el = $("#toast");
  el.textContent = message;
  el.dataset.kind = kind;
  el.hidden = false;
  clearTimeout(toast.timer);
  toast.timer = setTimeout(() => (el.hidden = true), 6000);
}

function updateTransport(status) {
  const btn = $("#btn-play");
  if (!btn) return;
  const running = status === "running";
  btn.dataset.state = running ? "running" : "paused";
  const label = btn.querySelector(".label");
  label.textContent = running ? label.dataset.pause : label.dataset.play;
  btn.setAttribute("aria-pressed", running ? "true" : "false");
  const banner = $("#diverged");
  if (banner) banner.hidden = status !== "diverged";
}

// Slider captions show the value as it moves; the request goes on release (change).
function wireSliders() {
  for (const input of document.querySelectorAll(".slider input[type=range]")) {
    const out = input.closest("label").querySelector("output");
    const show = () => {
      const unit = input.dataset.unit;
      out.textContent = unit === "%" ? `${Math.round(input.value * 100)}%` : input.value;
    };
    input.addEventListener("input", show);
    show();
  }
}

async function main() {
  wireSliders();
  let session;
  let network = null;
  const chrome = wireChrome({
    sessionId: () => session?.id,
    toast,
    onPresent: () => { if (network?.frame) network.update(network.frame, null); },
  });
  try {
    session = await openSession(workspace);
  } catch (err) {
    toast(t("error.create", { message: err.message }));
    return;
  }
  wireHtmx(session);

  const viewOptions = {
    onPreview: (canvas, label) => {
      boundary.preview(canvas);
      const caption = $("#plot-caption");
      caption.hidden = !canvas;
      caption.textContent = label || "";
    },
    onEditWeight: ({ layer, i, j, value }) =>
      api(session, "/params", { body: { layer, i, j, value } }).catch((e) => toast(e.message)),
  };
  const makeNetwork = () => createNetworkView($("#network"), viewOptions);
  const numbers = createNumbers();
  const chart = createLossChart($("#loss-chart"), $("#chart-tip"));
  const boundary = createBoundaryView($("#boundary"), {
    showTest: $("#show-test"),
    discretize: $("#discretize"),
    onClickPoint: (x, ev) => clickPlot(x, ev),
  });
  network = makeNetwork();

  // A click on the plot picks the probe, adds a point (Shift: the other class) or removes one.
  function clickPlot([x1, x2], ev) {
    const mode = document.querySelector("input[name=plot-mode]:checked")?.value || "probe";
    if (mode === "probe") {
      api(session, "/probe", { method: "PUT", body: { x: [x1, x2] } }).catch((e) => toast(e.message));
      return;
    }
    const values = { op: mode, x1, x2 };
    if (mode === "add") {
      const net = $("#network");
      const k = +net.dataset.classes;
      let label = +($("#add-class").value || 0);
      if (net.dataset.problem === "regression") label = ev.shiftKey ? -1 : 1;
      else if (ev.shiftKey) label = (label + 1) % k;
      values.label = label;
    }
    htmx.ajax("POST", "/ui/sessions/{sid}/points", { values, swap: "none" });
  }

  function fillClassChoice() {
    const select = $("#add-class");
    const net = $("#network");
    if (!select) return;
    const k = net.dataset.problem === "classification" ? +net.dataset.classes : 0;
    select.closest("label").hidden = k === 0;
    if (select.options.length === k) return;
    select.replaceChildren(...Array.from({ length: k }, (_, c) => new Option(t("output.class_n", { n: c }), String(c))));
  }
  fillClassChoice();
  let dataStructure = -1;

  async function refreshData(structure) {
    if (structure === dataStructure) return;
    dataStructure = structure;
    const res = await fetch(`/api/sessions/${session.id}/data`);
    if (!res.ok) return;
    const net = $("#network");
    const data = await res.json();
    const plot = $(".plot-area");
    const plane = net.dataset.plane === "1";
    plot.hidden = !plane;
    if (plane) boundary.setData(data);
  }

  async function refreshNetwork() {
    const res = await fetch(`/ui/sessions/${session.id}/network`, { headers: { "X-Lang": document.body.dataset.lang } });
    if (!res.ok) return;
    const holder = document.createElement("div");
    holder.innerHTML = await res.text();
    $("#network").replaceWith(holder.firstElementChild);
    htmx.process($("#network"));
    network = makeNetwork();
    fillClassChoice();
  }

  // Out-of-band swaps (the network after a data change) end here too.
  document.body.addEventListener("htmx:oobAfterSwap", (ev) => {
    if (ev.detail.target?.id === "network") { network = makeNetwork(); fillClassChoice(); }
    if (ev.detail.target?.id === "data-panel") wireSliders();
  });
  document.body.addEventListener("htmx:afterSwap", (ev) => {
    if (ev.detail.target.id === "network" || ev.detail.elt?.id === "network") {
      network = makeNetwork();
      fillClassChoice();
    }
  });
  document.body.addEventListener("htmx:responseError", (ev) => {
    let message = ev.detail.xhr.statusText;
    try { message = errorText(JSON.parse(ev.detail.xhr.responseText), message); } catch {}
    toast(message);
  });
  document.body.addEventListener("htmx:sendError", () => toast(t("error.network")));

  // Language links keep the session: same URL, other language.
  for (const a of document.querySelectorAll("[data-lang-switch]")) {
    a.addEventListener("click", (ev) => {
      ev.preventDefault();
      const url = new URL(location.href);
      url.searchParams.set("lang", a.dataset.langSwitch);
      location.href = url.toString();
    });
  }
  // Presets open a fresh page (new session) with that preset's config.
  document.body.addEventListener("change", (ev) => {
    if (ev.target.id !== "f-preset" || !ev.target.value) return;
    const url = new URL(location.origin + "/");
    url.searchParams.set("preset", ev.target.value);
    url.searchParams.set("lang", document.body.dataset.lang);
    location.href = url.toString();
  });

  if (workspace.dataset.autoplay === "1" && !session.reopened) {
    api(session, "/play").catch((e) => toast(e.message));
  }
  connectStream(session.id, {
    fps: 30,
    onHistory: (rows) => chart.setHistory(rows),
    onFrame: (frame, heat) => {
      if (frame.structure > network.structure) {
        refreshNetwork(); // changed elsewhere (another tab, the API): redraw, then follow
      } else if (frame.structure === network.structure) {
        network.update(frame, heat);
      }
      refreshData(frame.structure);
      numbers.update(frame);
      chart.update(frame);
      boundary.update(frame, heat);
      updateTransport(frame.status);
    },
    onWatchers: (n) => chrome.setWatchers(n),
    onClosed: (info) => toast(t("error.closed", { reason: info.reason })),
    onError: () => toast(t("error.stream")),
  });
}

main();
