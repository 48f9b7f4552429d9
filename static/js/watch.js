// Entry point of the watch page (/s/{id}): the same live view, no controls, no token.
import { t } from "./i18n.js";
import { createLiveView } from "./liveview.js";

const $ = (sel) => document.querySelector(sel);

function status(text) {
  $("#watch-status").textContent = text;
}

const live = createLiveView({
  sid: $("#workspace").dataset.session,
  toast: status,
  onStatus: (s) => status(s === "running" ? t("watch.running") : s === "diverged" ? t("diverged.title") : t("watch.paused")),
});
document.addEventListener("keydown", (ev) => { if (live.key(ev)) ev.preventDefault(); });
live.connect();
