// Presence: the server trains only for pages somebody looks at, and a session ends with its
// page (app/lifecycle.py holds the server's rules).
//  - The live stream is open only while the page is visible and, in an embed, while the
//    embed is in view (IntersectionObserver on the embed's own document: inside an iframe
//    that is the part of the host page's viewport it covers). A closed stream is how the
//    page tells the server nobody looks; the server pauses the session after a short grace
//    and plays it again when the stream comes back. So an autoplay embed starts only in view.
//  - pagehide releases the page's session (fetch with keepalive, carrying the token); the
//    server ends it after a grace, and a reload within the grace takes the release back.
//  - Embeds: every reader of the same setup watches one shared session (no token); the
//    first change a reader makes forks a session of their own, from the same weights and
//    epoch, and the page follows it.
//  - When no session could be made (a full server), the page says so with a Retry button,
//    and no control posts to a session that does not exist.
import { startBusyNote } from "./busy.js";
import { errorText, t } from "./i18n.js";

const tokenKey = (sid) => `mlp:token:${sid}`; // where session.js keeps a session's token
const PAGE_PARAMS = ["session", "lang", "present", "debug", "autoplay", "hide"];
const isEmbed = () => document.body.classList.contains("embed");
const sessionUrl = (sid, path = "") => `/api/sessions/${encodeURIComponent(sid)}${path}`;

// The shared session of this embed's readers, or null when the page is not an embed or
// holds its own session (a reader's fork, reloaded): session.js opens those as before.
export async function joinEmbed(workspace) {
  if (!isEmbed()) return null;
  const own = workspace.dataset.session;
  if (own && sessionStorage.getItem(tokenKey(own))) return null;
  const json = await join(workspace);
  const session = { id: json.id, token: null, broadcast: true, reopened: false };
  session.fork = () => fork(session);
  return session;
}

async function join(workspace) {
  // The embed's own query (the server normalises it; a query without a seed shares any seed).
  const body = new URLSearchParams(location.search);
  for (const name of PAGE_PARAMS) body.delete(name);
  if (workspace.dataset.snapshot) body.set("snapshot", workspace.dataset.snapshot);
  body.set("autoplay", workspace.dataset.autoplay === "1" ? "1" : "0");
  const res = await fetch("/embed/join", { method: "POST", body });
  const json = await res.json().catch(() => ({}));
  if (!res.ok) throw new Error(errorText(json, res.statusText));
  return json;
}

// The reader's own copy of the shared session; one fork however many clicks wait for it.
let forking = null;
function fork(session) {
  forking ??= (async () => {
    const res = await fetch(`/embed/${encodeURIComponent(session.id)}/fork`, { method: "POST" });
    const json = await res.json().catch(() => ({}));
    if (!res.ok) {
      forking = null;
      throw new Error(errorText(json, res.statusText));
    }
    sessionStorage.setItem(tokenKey(json.id), json.control_token);
    Object.assign(session, { id: json.id, token: json.control_token, broadcast: false });
    delete session.fork;
    const url = new URL(location.href);
    url.searchParams.set("session", json.id); // a reload reopens the reader's own session
    history.replaceState(null, "", url);
    session.onMoved?.(json.id);
  })();
  return forking;
}

// htmx controls of a shared session: fork first, then send the request to the copy.
// A capture listener on document runs before session.js's request queue on body.
function forkBeforeControls(session, toast) {
  document.addEventListener("htmx:confirm", (ev) => {
    if (!session.fork || !ev.detail.path.startsWith("/ui/sessions/{sid}/")) return;
    ev.preventDefault();
    ev.stopPropagation();
    session.fork().then(() => ev.detail.issueRequest(true), (e) => toast(e.message));
  }, true);
}

function release(session) {
  if (!session.token) return;
  fetch(sessionUrl(session.id, "/release"), {
    method: "POST", keepalive: true, headers: { Authorization: `Bearer ${session.token}` },
  }).catch(() => { /* the page is going away: nothing to tell */ });
}

function keep(session) {
  if (!session.token) return;
  fetch(sessionUrl(session.id, "/release"), { method: "DELETE", headers: { Authorization: `Bearer ${session.token}` } })
    .catch(() => { /* ended meanwhile: the stream will say so */ });
}

// A shared session ends when nobody watches it for a while: coming back into view, join
// the setup's current one instead (the same setup, trained afresh).
async function rejoinIfEnded(session, workspace, live) {
  const res = await fetch(sessionUrl(session.id)).catch(() => null);
  if (!res || (res.status !== 404 && res.status !== 410)) return;
  const json = await join(workspace);
  session.id = json.id;
  live.rebind(json.id);
}

// Open the stream while somebody can see the page, close it otherwise; release on pagehide.
export function watchPresence({ session, live, workspace, toast }) {
  let inView = !isEmbed() || !("IntersectionObserver" in window);
  let shown = null;
  let busy = Promise.resolve();
  const apply = () => {
    busy = busy.then(async () => {
      const visible = document.visibilityState === "visible" && inView;
      if (visible === shown) return;
      shown = visible;
      if (!visible) return live.disconnect();
      if (session.broadcast) await rejoinIfEnded(session, workspace, live).catch(() => {});
      live.connect();
    });
  };
  session.onMoved = (id) => {
    live.rebind(id);
    if (shown) live.connect();
  };
  if (session.fork) forkBeforeControls(session, toast);
  document.addEventListener("visibilitychange", apply);
  if (!inView) {
    new IntersectionObserver((entries) => {
      inView = entries.some((e) => e.isIntersecting);
      apply();
    }).observe(document.documentElement);
  }
  window.addEventListener("pagehide", () => {
    release(session);
    live.disconnect();
    shown = false;
  });
  window.addEventListener("pageshow", (ev) => {
    if (!ev.persisted) return; // restored from the back/forward cache: hold the session again
    keep(session);
    shown = null;
    apply();
  });
  if (session.reopened) keep(session);
  apply();
  startBusyNote();
}

// No session (the server is full, or unreachable): say so in the reader's language, offer
// Retry, and stop every control from posting to a session that does not exist.
export function offerRetry(message) {
  document.addEventListener("htmx:confirm", (ev) => {
    if (ev.detail.path.includes("{sid}")) ev.preventDefault();
  }, true);
  const banner = document.createElement("div");
  banner.className = "banner";
  banner.id = "no-session";
  banner.setAttribute("role", "alert");
  const text = document.createElement("p");
  text.textContent = t("error.create", { message });
  const retry = document.createElement("button");
  retry.type = "button";
  retry.textContent = t("action.retry");
  retry.addEventListener("click", () => location.reload());
  banner.append(text, retry);
  const workspace = document.getElementById("workspace");
  (workspace ?? document.body).prepend(banner);
}
