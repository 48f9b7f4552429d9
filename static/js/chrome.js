// Page chrome: share dialog, presentation mode, theme, help, full screen and the keyboard
// shortcuts (Space play/pause, → step, R reset, F full screen, P presentation, ? help).
import { setPalette } from "./colors.js";
import { downloadPng, downloadSvg } from "./figure.js";
import { t } from "./i18n.js";

const $ = (sel) => document.querySelector(sel);
const THEMES = ["auto", "dark", "light"];

export function copyText(text) {
  // The clipboard API needs a secure context; a classroom LAN address is plain http.
  if (navigator.clipboard && window.isSecureContext) return navigator.clipboard.writeText(text);
  const area = document.createElement("textarea");
  area.value = text;
  document.body.append(area);
  area.select();
  document.execCommand("copy");
  area.remove();
  return Promise.resolve();
}

export function wireChrome({ sessionId, onPresent, onTheme, onKey, onOpen, toast }) {
  // A small embed's settings popover closes when Tab leaves it, as it does on Escape or a
  // click elsewhere. Only for focus that moved on: an htmx swap of its panel blurs with no
  // relatedTarget, and must leave it open.
  const hyperPop = $("#hyper-pop"), hyperButton = $("#btn-hyper");
  const closeWhenFocusLeaves = (ev) => {
    const to = ev.relatedTarget;
    if (to && !hyperPop.contains(to) && to !== hyperButton && hyperPop.matches(":popover-open")) hyperPop.hidePopover();
  };
  hyperPop?.addEventListener("focusout", closeWhenFocusLeaves);
  hyperButton?.addEventListener("focusout", closeWhenFocusLeaves); // Shift+Tab back past the button

  // File pickers (templates/partials/_macros.html): show the chosen file's name. Delegated,
  // because htmx re-renders the data panel.
  document.addEventListener("change", (e) => {
    const input = e.target;
    if (!input.matches?.(".file-pick input[type=file]")) return;
    const name = input.parentElement.querySelector(".file-name");
    name.textContent = input.files.length ? input.files[0].name : name.dataset.none;
  });

  // Saved networks: the server stores UTC; show each time in the reader's own time zone.
  const localTimes = (root) => {
    const format = new Intl.DateTimeFormat(document.documentElement.lang || undefined,
                                           { dateStyle: "medium", timeStyle: "short" });
    for (const el of root.querySelectorAll?.("time[datetime]") ?? []) {
      const when = new Date(el.getAttribute("datetime"));
      if (!Number.isNaN(when.getTime())) el.textContent = format.format(when);
    }
  };
  document.body.addEventListener("htmx:load", (e) => localTimes(e.detail.elt));
  // After a save the name is cleared (the next save is not an accidental duplicate); after an
  // import the picker is emptied, so the same file can be chosen again.
  document.body.addEventListener("htmx:afterRequest", (e) => {
    const form = e.detail.elt.closest?.("form.snap-save, form.snap-import, form.upload");
    // A rejected upload leaves the old data in place: its file's name must not stay shown.
    if (!form || (form.matches(".upload") ? e.detail.successful : !e.detail.successful)) return;
    form.reset();
    const name = form.querySelector(".file-name");
    if (name) name.textContent = name.dataset.none;
  });

  // Theme: automatic (follows the system), dark or light; remembered on this device.
  const root = document.documentElement;
  root.dataset.theme = localStorage.getItem("mlp:theme") || "auto";
  $("#btn-theme")?.addEventListener("click", () => {
    const next = THEMES[(THEMES.indexOf(root.dataset.theme) + 1) % THEMES.length];
    root.dataset.theme = next;
    localStorage.setItem("mlp:theme", next);
    onTheme?.();
  });

  // Presentation mode: large type, thick lines, high-contrast palette, fewer controls.
  function setPresent(on) {
    document.body.classList.toggle("present", on);
    $("#btn-present")?.setAttribute("aria-pressed", on ? "true" : "false");
    setPalette(on ? "present" : "normal");
    onPresent?.(on);
  }
  setPresent(document.body.classList.contains("present"));
  $("#btn-present")?.addEventListener("click", () => setPresent(!document.body.classList.contains("present")));

  function toggleFullscreen() {
    if (document.fullscreenElement) document.exitFullscreen();
    else document.documentElement.requestFullscreen?.().catch(() => {});
  }

  // Share dialog: filled from /share when opened (watch link, QR code, config link, embed).
  async function openShare() {
    const dialog = $("#share-dialog");
    if (!dialog || !sessionId()) return;
    const res = await fetch(`/api/sessions/${sessionId()}/share`);
    if (!res.ok) return;
    const info = await res.json();
    $("#share-watch").value = info.watch_url;
    $("#share-config-rows").hidden = !info.config_url; // custom data cannot travel in a URL
    $("#share-custom").hidden = !!info.config_url;
    $("#share-config").value = info.config_url || "";
    $("#share-embed").value = info.embed_html || "";
    $("#share-qr").src = info.qr_url;
    $("#share-unreachable").hidden = info.reachable;
    $("#share-watchers").textContent = Math.max(0, info.watchers - 1); // not counting this page
    $("#export-csv").href = `/api/sessions/${sessionId()}/export/data.csv`;
    $("#export-model").href = `/api/sessions/${sessionId()}/export/model.py`;
    dialog.showModal();
  }
  $("#btn-share")?.addEventListener("click", openShare);
  $("#btn-help")?.addEventListener("click", () => $("#help-dialog")?.showModal());
  $("#btn-saved")?.addEventListener("click", () => {
    $("#snap-dialog").showModal();
    htmx.trigger(document.body, "mlp:snapshots"); // (re)load the list
  });
  $("#export-svg")?.addEventListener("click", () => downloadSvg($("#net-svg")));
  $("#export-png")?.addEventListener("click", () => downloadPng($("#net-svg")).catch((e) => toast(e.message)));
  document.body.addEventListener("click", (ev) => {
    const copy = ev.target.closest?.("[data-copy]");
    if (copy) copyText($(copy.dataset.copy).value).then(() => toast(t("share.copied"), "info"));
    const embed = ev.target.closest?.("[data-copy-embed]");
    if (embed) {
      const src = location.origin + embed.dataset.copyEmbed;
      copyText(`<iframe src="${src}" width="1000" height="640" style="border:0" title="MLP Playground" loading="lazy"></iframe>`)
        .then(() => toast(t("share.copied"), "info"));
    }
    const open = ev.target.closest?.("[data-open-snapshot]");
    if (open) openSnapshot(open.dataset.openSnapshot);
  });

  // Opening a snapshot starts a new session with its weights and moves this page (and its
  // viewers) to it.
  function openSnapshot(snapshotId) {
    return onOpen((near) => fetch(`/api/sessions${near}`, { method: "POST", headers: { "Content-Type": "application/json" },
                                                 body: JSON.stringify({ snapshot: snapshotId }) }));
  }

  // How the focused control got the focus. A control clicked with the mouse keeps it (a
  // dataset tile, a slider, a select, a button): the shortcuts must still work there. One
  // reached with the keyboard keeps its own Space, Enter and arrow keys.
  let pointing = false;
  const byPointer = new WeakSet();
  document.addEventListener("pointerdown", () => { pointing = true; }, true);
  document.addEventListener("keydown", (ev) => { if (ev.key === "Tab") pointing = false; }, true);
  document.addEventListener("focusin", (ev) => {
    if (pointing) byPointer.add(ev.target);
    else byPointer.delete(ev.target);
  });
  const TEXT_FREE = ["checkbox", "radio", "range", "button", "submit", "reset", "file", "color"];
  const isTextField = (el) => el.isContentEditable || el.tagName === "TEXTAREA" || (el.tagName === "INPUT" && !TEXT_FREE.includes(el.type));
  const OWN_KEYS = [" ", "Enter", "ArrowLeft", "ArrowRight", "ArrowUp", "ArrowDown", "Home", "End", "PageUp", "PageDown"];
  // Whether the focused control keeps this key for itself: a select its arrows (and Enter)
  // always; any control reached with the keyboard its Space, Enter and arrows.
  function keepsKey(el, key) {
    if (!OWN_KEYS.includes(key)) return false;
    if (el.tagName === "SELECT") return key !== " ";
    const control = ["INPUT", "BUTTON"].includes(el.tagName) || el.getAttribute?.("role") === "button";
    return control && !byPointer.has(el);
  }

  document.addEventListener("keydown", (ev) => {
    const tag = ev.target.tagName;
    if (ev.ctrlKey || ev.metaKey || ev.altKey || isTextField(ev.target)) return;
    if (document.querySelector("dialog[open]")) return; // a dialog has the keyboard
    if (onKey?.(ev)) { ev.preventDefault(); return; } // e.g. the forward pass takes ← → Esc
    // SVG buttons (input features) act on Enter and Space like HTML buttons.
    if ((ev.key === "Enter" || ev.key === " ") && ev.target.getAttribute?.("role") === "button" && tag !== "BUTTON"
        && keepsKey(ev.target, ev.key)) {
      ev.preventDefault();
      ev.target.dispatchEvent(new MouseEvent("click", { bubbles: true }));
      return;
    }
    if (keepsKey(ev.target, ev.key) || (ev.key === "Enter" && tag === "BUTTON")) return;
    const clicks = { " ": "#btn-play", ArrowRight: "#btn-step", r: "#btn-reset", R: "#btn-reset" };
    const actions = {
      f: toggleFullscreen, F: toggleFullscreen,
      p: () => setPresent(!document.body.classList.contains("present")),
      P: () => setPresent(!document.body.classList.contains("present")),
      "?": () => $("#help-dialog")?.showModal(),
    };
    if (clicks[ev.key] && $(clicks[ev.key])) {
      ev.preventDefault();
      $(clicks[ev.key]).click();
    } else if (actions[ev.key]) {
      ev.preventDefault();
      actions[ev.key]();
    }
  });

  return {
    setWatchers(n) {
      const badge = $("#watchers");
      if (!badge) return;
      badge.hidden = n <= 1; // the teacher's own page is one of the streams
      badge.querySelector(".count").textContent = String(Math.max(0, n - 1));
      const inDialog = $("#share-watchers");
      if (inDialog) inDialog.textContent = String(Math.max(0, n - 1));
    },
  };
}
