// Entry point of the watch page (/s/{id}): the same live view, no controls, no token.
import { t } from "./i18n.js";
import { createLiveView } from "./liveview.js";

const $ = (sel) => document.querySelector(sel);
const sid = $("#workspace").dataset.session;

function status(text) {
  $("#watch-status").textContent = text;
}

// What is being trained: dataset, learning rate, optimizer, regularization, batch size and
// the layers, from the session's config and the newest frame's layers.
function showSetup(cfg, layers) {
  const reg = t(`reg.${cfg.regularization}`) + (cfg.regularization === "none" ? "" : ` (${cfg.regularization_rate})`);
  const data = cfg.dataset === "custom" ? `${t("dataset.custom")} (${cfg.n_points})` : t(`dataset.${cfg.dataset}`);
  const shape = layers.map((l) => (l.activation === "input" ? String(l.units) : `${l.units} ${t(`act.${l.activation}`)}`));
  $("#watch-setup-text").textContent = [
    `${t("data.title")}: ${data}`,
    `${t("hyper.learning_rate")}: ${cfg.learning_rate}`,
    `${t("hyper.optimizer")}: ${t(`opt.${cfg.optimizer}`)}`,
    `${t("hyper.regularization")}: ${reg}`,
    `${t("data.batch_size")}: ${cfg.batch_size}`,
    `${t("watch.layers")}: ${shape.join(" → ")}`,
  ].join(" · ");
}

// The page came with the config it was rendered for; a newer one is fetched whenever the
// stream reports a config_version this page has not shown.
let config = JSON.parse($("#watch-setup")?.dataset.config || "null");
let asked = 0;
async function followConfig(frame, first) {
  const mine = ++asked;
  if (!first || !config) {
    const res = await fetch(`/api/sessions/${encodeURIComponent(sid)}`).catch(() => null);
    const body = res?.ok ? await res.json() : null;
    if (mine !== asked) return; // a newer change is being fetched
    if (body) config = body.config;
  }
  if (config && $("#watch-setup-text")) showSetup(config, frame.layers);
}

const live = createLiveView({
  sid,
  toast: status,
  onStatus: (s) => status(s === "running" ? t("watch.running") : s === "diverged" ? t("diverged.title") : t("watch.paused")),
  onConfig: followConfig,
});
document.addEventListener("keydown", (ev) => { if (live.key(ev)) ev.preventDefault(); });
live.connect();
