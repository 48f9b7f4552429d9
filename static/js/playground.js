// Entry point of the playground page: opens the session, wires the controls, and starts
// the live view (see liveview.js), which draws every frame.
import { wireChrome } from "./chrome.js";
import { errorText, t } from "./i18n.js";
import { createLiveView } from "./liveview.js";
import { joinEmbed, offerRetry, watchPresence } from "./presence.js";
import { api, controlBusy, createSession, moveTo, nearQuery, openSession, wireHtmx } from "./session.js";

const $ = (sel) => document.querySelector(sel);
const workspace = $("#workspace");

export function toast(message, kind = "error") {
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
      out.textContent = input.dataset.unit === "%" ? `${Math.round(input.value * 100)}%` : input.value;
    };
    input.addEventListener("input", show);
    show();
  }
}

// An upload too large for the request-body limit is still "larger than the upload limit":
// one limit, the one the data panel names, with its digits grouped.
function uploadError(elt, body) {
  const form = elt?.closest?.("form.upload");
  if (!form || !["body_too_large", "csv_too_large"].includes(body?.code)) return body;
  const max = (+form.dataset.maxBytes).toLocaleString(document.documentElement.lang || "en");
  return { ...body, code: "csv_too_large", params: { ...body.params, max } };
}

// The class a click on the plot adds (for classification).
function fillClassChoice() {
  const select = $("#add-class");
  const net = $("#network");
  if (!select) return;
  const k = net.dataset.problem === "classification" ? +net.dataset.classes : 0;
  select.closest("label").hidden = k === 0;
  if (select.options.length === k) return;
  select.replaceChildren(...Array.from({ length: k }, (_, c) => new Option(t("output.class_n", { n: c }), String(c))));
}

// Opening a preset or a saved network creates a new session (`create(near)` makes the
// request, with `near` appended to its URL); this page and its viewers move to it, and the
// current one ends, so ask first when it has trained. One move at a time: a second one
// would strand the viewers on the first.
let moving = false;
async function switchTo(session, create) {
  if (moving) return false;
  const trained = parseInt($("#epoch").textContent.replace(/\D/g, ""), 10) > 0;
  if (trained && !confirm(t("confirm.leave"))) return false;
  moving = true;
  const res = await create(nearQuery(session)).catch(() => null);
  const body = res ? await res.json().catch(() => ({})) : {};
  if (!res?.ok) {
    moving = false;
    toast(errorText(body, res ? res.statusText : t("error.stream")));
    return false;
  }
  await moveTo(session, body); // navigates away; `moving` stays set until the page goes
  return true;
}

// A link to a session this tab does not control: show that session live (read-only) behind
// a dialog offering to watch it or to start an own copy of its setup (the config the server
// put in data-query). Its own points (custom data) cannot travel: the copy then uses the
// default dataset, and the dialog says so.
function offerForeign(sid) {
  const live = createLiveView({ sid, toast, onStatus: updateTransport });
  live.connect();
  const watch = new URLSearchParams({ lang: document.body.dataset.lang });
  $("#foreign-watch").href = `/s/${encodeURIComponent(sid)}?${watch}`;
  const query = new URLSearchParams(workspace.dataset.query);
  const custom = query.get("dataset") === "custom";
  if (custom) for (const name of ["dataset", "n_points", "classes"]) query.delete(name);
  $("#foreign-custom").hidden = !custom;
  const dialog = $("#foreign-dialog");
  dialog.addEventListener("cancel", (ev) => ev.preventDefault()); // a choice is needed
  $("#foreign-copy").addEventListener("click", async (ev) => {
    ev.target.disabled = true;
    try {
      await createSession(workspace, query.toString()); // keeps the token, names it in the URL
      location.reload();
    } catch (err) {
      ev.target.disabled = false;
      toast(t("error.create", { message: err.message }));
    }
  });
  dialog.showModal();
}

// The settings panels again, as the session has them now: another page controlling the same
// session (a second tab) changed them. Swapped out of band, like an htmx answer.
async function refreshPanels(sid) {
  const res = await fetch(`/ui/sessions/${encodeURIComponent(sid)}/panels`, { headers: { "X-Lang": document.body.dataset.lang } }).catch(() => null);
  if (!res?.ok) return;
  const focused = document.activeElement?.id;
  htmx.swap(document.body, await res.text(), { swapStyle: "none" });
  if (focused && document.activeElement === document.body) document.getElementById(focused)?.focus({ preventScroll: true });
}

async function main() {
  wireSliders();
  let session;
  let live = null;
  let panelsVersion = -1; // the config_version the settings panels show, from this page's own answers
  const chrome = wireChrome({
    sessionId: () => session?.id,
    onOpen: (create) => switchTo(session, create),
    toast,
    onPresent: () => live?.repaint(),
    onTheme: () => live?.repaint(),
    onKey: (ev) => live?.key(ev) ?? false,
  });
  try {
    session = (await joinEmbed(workspace)) ?? (await openSession(workspace));
  } catch (err) {
    offerRetry(err.message);
    return;
  }
  if (session.foreign) {
    offerForeign(session.id);
    return;
  }
  wireHtmx(session);

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
      let label = +($("#add-class").value || 0);
      if (net.dataset.problem === "regression") label = ev.shiftKey ? -1 : 1;
      else if (ev.shiftKey) label = (label + 1) % +net.dataset.classes;
      values.label = label;
    }
    htmx.ajax("POST", "/ui/sessions/{sid}/points", { values, swap: "none" });
  }

  live = createLiveView({
    sid: session.id, session, toast, onClickPoint: clickPlot,
    onStatus: updateTransport, onWatchers: (n) => chrome.setWatchers(n),
    // Changed on another page (this page's own answers bring the panels with them: fetching
    // them again would also clear a file picker the user is filling in).
    onConfig: (frame, first) => {
      if (!first && !controlBusy() && frame.config_version > panelsVersion) refreshPanels(session.id);
    },
  });
  fillClassChoice();

  // The network swapped by htmx (a structure button, or out of band after a data change).
  const swapped = () => { live.networkSwapped(); fillClassChoice(); };
  document.body.addEventListener("htmx:oobAfterSwap", (ev) => {
    if (ev.detail.target?.id === "network") swapped();
    if (ev.detail.target?.id === "data-panel") wireSliders();
  });
  document.body.addEventListener("htmx:afterSwap", (ev) => {
    if (ev.detail.target?.id === "network" || ev.detail.elt?.id === "network") swapped();
  });
  document.body.addEventListener("htmx:responseError", (ev) => {
    let message = ev.detail.xhr.statusText;
    try { message = errorText(uploadError(ev.detail.elt, JSON.parse(ev.detail.xhr.responseText)), message); } catch { /* not JSON: keep the status text */ }
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
  // A change that starts the network afresh also pauses it: say so, or the stopped training
  // looks like a fault. Another dataset (a tile, a class count, an upload) always does.
  document.body.addEventListener("mlp:config", (ev) => {
    panelsVersion = Math.max(panelsVersion, ev.detail.version ?? -1);
    if (!ev.detail.reset || ev.target.closest?.("#lesson-panel")) return; // a lesson step's text says it
    const data = ["dataset", "classes"].some((k) => ev.detail.changed.includes(k)) || ev.target.closest?.("form.upload");
    toast(data ? t("info.new_dataset") : t("info.restarted"), "info");
  });
  // A preset is a new session with that preset's config; this page and its viewers move to it.
  document.body.addEventListener("change", async (ev) => {
    if (ev.target.id !== "f-preset" || !ev.target.value) return;
    const preset = ev.target.value;
    const moved = await switchTo(session, (near) => fetch(`/ui/sessions${near}`, { method: "POST", body: new URLSearchParams({ preset }) }));
    if (!moved) ev.target.value = "";
  });

  if (workspace.dataset.autoplay === "1" && !session.reopened && !session.broadcast) {
    api(session, "/play").catch((e) => toast(e.message));
  }
  watchPresence({ session, live, workspace, toast }); // connects while somebody looks
}

main();
