import { errorText } from "./i18n.js";

// The page's own session: created on load through the API (POST /ui/sessions, which takes
// the page's query string), or reopened after a reload or a language switch from the
// ?session= parameter and the token kept in sessionStorage. The token never goes into a URL.
const key = (sid) => `mlp:token:${sid}`;

export async function openSession(workspace) {
  // The server fills data-session only while that session exists: an ended one (a reload
  // after a restart or a long break) starts afresh instead of talking to the dead one.
  const existing = workspace.dataset.session;
  if (existing && sessionStorage.getItem(key(existing))) {
    return { id: existing, token: sessionStorage.getItem(key(existing)), reopened: true };
  }
  // A link to a session this tab does not control (pasted into another browser, a bookmark,
  // the teacher's address bar): the page asks whether to watch it or copy its setup.
  if (existing) return { id: existing, token: null, foreign: true };
  return createSession(workspace);
}

// A new session from the page's config query (or its embedded snapshot); the page's URL
// then names it.
export async function createSession(workspace, query = null) {
  const url = new URL(location.href);
  let res;
  if (workspace.dataset.snapshot) { // an embedded snapshot: a session with its trained weights
    res = await fetch("/api/sessions", { method: "POST", headers: { "Content-Type": "application/json" },
                                         body: JSON.stringify({ snapshot: workspace.dataset.snapshot }) });
  } else {
    const body = new URLSearchParams(query ?? (workspace.dataset.query || url.search.slice(1)));
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

// Control requests run one at a time, in the order they were made, and none is dropped:
// htmx alone keeps only the last of the clicks made while a request is out, so 15 fast
// clicks on "+" added 8 neurons. A request whose element was replaced meanwhile (the
// network is redrawn after each "+") is sent with the values it had when it was made.
let busy = () => false;
// Whether a control request of this page is out or waiting: its answer brings the panels.
export const controlBusy = () => busy();

// A queued control's value, on the control that now has its id: an answer redrew it (the
// settings out of band, or the network) while the control's own request still waited.
function keepValue(item) {
  const field = item.id ? document.getElementById(item.id) : null;
  const value = field ? item.values[field.name] : undefined;
  if (!field || field === item.elt || value === undefined || Array.isArray(value)) return;
  if (field.type === "radio") field.checked = true; // the radio that was picked (a dataset)
  else if (field.tagName === "SELECT" || ["range", "number"].includes(field.type)) field.value = value;
}

function queueControlRequests() {
  const queue = [];
  let current = null; // the element whose request is out
  let releasing = false;
  let watchdog = 0;
  busy = () => current !== null || queue.length > 0;
  const next = () => {
    clearTimeout(watchdog);
    current = null;
    const item = queue.shift();
    if (!item) return;
    current = item.elt.isConnected ? item.elt : document.body;
    // A request that never goes out (cancelled before sending) must not stall the rest.
    watchdog = setTimeout(next, 20000);
    releasing = true;
    try {
      if (item.elt.isConnected) item.issue(true);
      else htmx.ajax(item.verb, item.path, { source: document.body, target: item.target, swap: item.swap, values: item.values });
    } finally {
      releasing = false;
    }
  };
  document.body.addEventListener("htmx:confirm", (ev) => {
    const { elt, path, verb, target } = ev.detail;
    if (releasing || !path.startsWith("/ui/sessions/{sid}/")) return;
    ev.preventDefault();
    const vals = elt.closest?.("[hx-vals]")?.getAttribute("hx-vals");
    queue.push({
      elt, id: elt.id || null, verb, path, issue: ev.detail.issueRequest,
      target: target?.id ? `#${target.id}` : "body",
      swap: elt.closest?.("[hx-swap]")?.getAttribute("hx-swap") || "none",
      values: { ...htmx.values(elt, verb), ...(vals ? JSON.parse(vals) : {}) },
    });
    if (current === null) next();
  });
  // An answer shows the session as its own request left it. Controls changed since, whose
  // requests still wait here, keep their newer values: else the screen jumps back, and a held
  // arrow key on a select steps on from the older value (5 presses went 3 steps).
  const keepQueued = () => { for (const item of queue) keepValue(item); };
  document.body.addEventListener("htmx:oobAfterSwap", keepQueued);
  document.body.addEventListener("htmx:afterSwap", keepQueued);
  // The next one goes when this one has ended (and been swapped in). Through the XHR: the
  // element's own events no longer reach the page once a swap has removed it.
  document.body.addEventListener("htmx:beforeSend", (ev) => {
    if (current !== null && ev.detail.elt === current) ev.detail.xhr.addEventListener("loadend", () => setTimeout(next));
  });
}

// Every htmx request of this page: fill the session id into the path and add the token.
export function wireHtmx(session) {
  queueControlRequests();
  document.body.addEventListener("htmx:configRequest", (ev) => {
    ev.detail.path = ev.detail.path.replace("{sid}", encodeURIComponent(session.id));
    ev.detail.headers["Authorization"] = `Bearer ${session.token}`;
    ev.detail.headers["X-Lang"] = document.body.dataset.lang;
    const admin = document.getElementById("admin-token")?.value;
    if (admin) ev.detail.headers["X-Admin-Token"] = admin;
  });
}

export async function api(session, path, { method = "POST", body } = {}) {
  if (session.fork && method !== "GET") await session.fork(); // a shared embed session: the reader's own copy first
  const res = await fetch(`/api/sessions/${encodeURIComponent(session.id)}${path}`, {
    method,
    headers: { Authorization: `Bearer ${session.token}`, ...(body ? { "Content-Type": "application/json" } : {}) },
    body: body ? JSON.stringify(body) : undefined,
  });
  const json = res.status === 204 ? null : await res.json();
  if (!res.ok) throw new Error(errorText(json, res.statusText));
  return json;
}

// The query that creates a successor on the same node as `session` (its id names the node;
// deploy/nginx.conf routes a create request by ?near=), so the handover never crosses
// nodes. The server itself ignores it. Empty without a session.
export function nearQuery(session) {
  return session?.id ? `?${new URLSearchParams({ near: session.id })}` : "";
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
