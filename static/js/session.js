import { errorText } from "./i18n.js";

// The page's own session: created on load through the API (POST /ui/sessions, which takes
// the page's query string), or reopened after a reload or a language switch from the
// ?session= parameter and the token kept in sessionStorage. The token never goes into a URL.
const key = (sid) => `mlp:token:${sid}`;

export async function openSession(workspace) {
  const url = new URL(location.href);
  // The server fills data-session only while that session exists: an ended one (a reload
  // after a restart or a long break) starts afresh instead of talking to the dead one.
  const existing = workspace.dataset.session;
  if (existing && sessionStorage.getItem(key(existing))) {
    return { id: existing, token: sessionStorage.getItem(key(existing)), reopened: true };
  }
  let res;
  if (workspace.dataset.snapshot) { // an embedded snapshot: a session with its trained weights
    res = await fetch("/api/sessions", { method: "POST", headers: { "Content-Type": "application/json" },
                                         body: JSON.stringify({ snapshot: workspace.dataset.snapshot }) });
  } else {
    const body = new URLSearchParams(workspace.dataset.query || url.search.slice(1));
    for (const name of ["session", "lang", "present", "debug", "autoplay", "hide"]) body.delete(name);
    if (url.searchParams.get("preset")) body.set("preset", url.searchParams.get("preset"));
    res = await fetch("/ui/sessions", { method: "POST", body });
  }
  const json = await res.json();
  if (!res.ok) throw new Error(errorText(json, res.statusText));
  sessionStorage.setItem(key(json.id), json.control_token);
  url.searchParams.set("session", json.id);
  url.searchParams.delete("preset");
  history.replaceState(null, "", url);
  return { id: json.id, token: json.control_token, reopened: false };
}

// Every htmx request of this page: fill the session id into the path and add the token.
export function wireHtmx(session) {
  document.body.addEventListener("htmx:configRequest", (ev) => {
    ev.detail.path = ev.detail.path.replace("{sid}", encodeURIComponent(session.id));
    ev.detail.headers["Authorization"] = `Bearer ${session.token}`;
    ev.detail.headers["X-Lang"] = document.body.dataset.lang;
    const admin = document.getElementById("admin-token")?.value;
    if (admin) ev.detail.headers["X-Admin-Token"] = admin;
  });
}

export async function api(session, path, { method = "POST", body } = {}) {
  const res = await fetch(`/api/sessions/${encodeURIComponent(session.id)}${path}`, {
    method,
    headers: { Authorization: `Bearer ${session.token}`, ...(body ? { "Content-Type": "application/json" } : {}) },
    body: body ? JSON.stringify(body) : undefined,
  });
  const json = res.status === 204 ? null : await res.json();
  if (!res.ok) throw new Error(errorText(json, res.statusText));
  return json;
}

// This page moves to a session it has just created (a preset, a saved network). The old
// session hands its viewers over first, so students follow instead of watching a session
// nobody controls any more; then the page reloads on the new one.
export async function moveTo(session, created) {
  sessionStorage.setItem(key(created.id), created.control_token);
  if (session) {
    try {
      await api(session, "/handover", { body: { to: created.id, to_token: created.control_token } });
    } catch (e) {
      console.warn("handover failed; moving on without it", e); // e.g. the old session had expired
    }
  }
  const url = new URL(location.origin + "/");
  url.searchParams.set("session", created.id);
  url.searchParams.set("lang", document.body.dataset.lang);
  location.href = url.toString();
}
