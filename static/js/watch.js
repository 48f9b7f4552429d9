// Entry point of the watch page (/s/{id}): the same live views, no controls, no token.
import { createBoundaryView } from "./boundary.js";
import { t } from "./i18n.js";
import { createLossChart } from "./losschart.js";
import { createNetworkView } from "./network.js";
import { createNumbers } from "./numbers.js";
import { connectStream } from "./stream.js";

const $ = (sel) => document.querySelector(sel);
const sid = $("#workspace").dataset.session;

let network = createNetworkView($("#network"));
const numbers = createNumbers();
const chart = createLossChart($("#loss-chart"), $("#chart-tip"));
const boundary = createBoundaryView($("#boundary"), { showTest: $("#show-test"), discretize: $("#discretize") });
let dataStructure = -1;
let refreshing = false;

async function refreshNetwork() {
  if (refreshing) return;
  refreshing = true;
  try {
    const res = await fetch(`/ui/sessions/${sid}/network?controls=false`, { headers: { "X-Lang": document.body.dataset.lang } });
    if (res.ok) {
      const holder = document.createElement("div");
      holder.innerHTML = await res.text();
      $("#network").replaceWith(holder.firstElementChild);
      network = createNetworkView($("#network"));
    }
  } finally {
    refreshing = false;
  }
}

async function refreshData(structure) {
  if (structure === dataStructure) return;
  dataStructure = structure;
  const res = await fetch(`/api/sessions/${sid}/data`);
  if (!res.ok) return;
  const net = $("#network");
  $(".plot-area").hidden = net.dataset.plane !== "1";
  boundary.setData(await res.json());
}

connectStream(sid, {
  fps: 30,
  onHistory: (rows) => chart.setHistory(rows),
  onFrame: (frame, heat) => {
    if (frame.structure !== network.structure) refreshNetwork();
    else network.update(frame, heat);
    refreshData(frame.structure);
    numbers.update(frame);
    chart.update(frame);
    boundary.update(frame, heat);
  },
  onClosed: (info) => ($("#watch-status").textContent = t("error.closed", { reason: info.reason })),
  onError: () => ($("#watch-status").textContent = t("error.stream")),
});
