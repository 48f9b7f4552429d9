// The lesson panel: a lesson's steps beside the playground, the step's highlight on the page,
// and its exercise's progress as the server checks it (GET /api/sessions/{id}/lesson). On the
// playground a step starts from its setup (sent as the page's own control requests, so the
// panels and the drawing follow); the step shown is told to the server, and watchers of the
// session see the same step and highlight (the stream's `lesson` event, as `mlp:lesson` on
// document). Progress is kept in localStorage, no account.
import { t } from "./i18n.js";
import { controlBusy } from "./session.js";

const $ = (sel) => document.querySelector(sel);
const panel = $("#lesson-panel");
const controls = panel?.dataset.controls === "1";
// A check a second while a learner works. Watchers follow the stream's lesson event, and
// poll (slowly) only when their stream carries none (relayed by another node of a cluster).
const POLL_MS = controls ? 1000 : 10000;
const HINT_AFTER_MS = 90000; // the hint offers itself after this long on an unmet goal
const SAVED = "mlp:lessons"; // {lesson: {done: [step ids], last: step id}}
const OPEN = "mlp:lesson:open"; // {lesson, step} while the panel is open, so a preset's new page reopens it
const OPS = { at_least: "≥", at_most: "≤", below: "<", above: ">", equals: "=" };

const state = { lesson: null, index: 0, progress: null, answer: null, shownAt: 0, hintTimer: 0, pollTimer: 0, pushed: "", streamed: false };

const saved = () => { try { return JSON.parse(localStorage.getItem(SAVED) || "{}"); } catch { return {}; } };
function remember(lessonId, stepId, done) {
  if (!controls) return; // a watcher's browser keeps no progress of the teacher's lesson
  const all = saved();
  const entry = all[lessonId] ?? { done: [], last: stepId };
  entry.last = stepId;
  if (done && !entry.done.includes(stepId)) entry.done.push(stepId);
  all[lessonId] = entry;
  localStorage.setItem(SAVED, JSON.stringify(all));
}

const lang = () => document.body.dataset.lang || "en";
const sessionId = () => new URLSearchParams(location.search).get("session") || $("#workspace")?.dataset.session || "";
const step = () => state.lesson?.steps[state.index] ?? null;

async function getJson(url) {
  const res = await fetch(url, { headers: { "X-Lang": lang() } }).catch(() => null);
  return res?.ok ? res.json() : null;
}

// --- what a check says: "test accuracy — now 81% · goal ≥ 95%" -------------------------------
// Shares read as the page shows them (the output panel's "47.2%", the noise slider's "30%"):
// a learner compares the goal with the number beside it, not with a fraction of one.
const PERCENT = new Set(["test_accuracy", "train_accuracy", "neuron_accuracy", "noise", "answer_gap"]);
const percent = (v) => `${String(Math.round(v * 1000) / 10)}%`;
// "128:relu,64:relu" (a share link's spelling) as "128 ReLU, 64 ReLU".
const sep = () => t("lesson.list_sep"); // ", " or "、"
const layersSpec = (spec) => spec ? spec.split(",").map((h) => { const [n, a] = h.split(":"); return `${n} ${t(`act.${a}`)}`; }).join(sep()) : "–";

function shown(value, quantity) {
  if (value === null || value === undefined) return "–";
  if (typeof value === "boolean") return value ? t("lesson.yes") : t("lesson.no");
  if (quantity === "dataset") return t(`dataset.${value}`);
  if (quantity === "status") return { paused: t("lesson.status.paused"), running: t("lesson.status.running"), diverged: t("lesson.status.diverged") }[value] ?? value;
  if (quantity === "hidden") return layersSpec(String(value));
  if (quantity === "hidden_activations") {
    const names = Array.isArray(value) ? value : [value];
    return names.length ? names.map((a) => t(`act.${a}`)).join(sep()) : "–";
  }
  if (typeof value === "number" && PERCENT.has(quantity)) return percent(value);
  if (typeof value === "number") return Number.isInteger(value) ? String(value) : value.toFixed(value < 0.01 ? 4 : 3);
  return String(value);
}

function target(check) {
  const list = (v) => v.map((x) => shown(x, check.quantity)).join(sep());
  if (check.op === "one_of") return t("lesson.op.one_of", { items: list(check.target) });
  if (check.op === "all_in") return t("lesson.op.all_in", { items: list(check.target) });
  if (check.op === "none_in") return t("lesson.op.none_in", { items: list(check.target) });
  if (check.op === "equals") return shown(check.target, check.quantity); // "goal 3", not "goal = 3"
  return `${OPS[check.op]} ${shown(check.target, check.quantity)}`;
}

function renderChecks() {
  const s = step();
  const list = $("#lesson-checks");
  const results = state.progress?.checks ?? [];
  list.replaceChildren(...s.goal.checks.map((check, k) => {
    const li = document.createElement("li");
    const result = results[k];
    li.className = result?.met ? "met" : "open";
    const label = document.createElement("span");
    label.className = "label";
    label.textContent = t(check.label, check.params); // the label is already translated; fills {layer}, {neuron}
    const value = document.createElement("span");
    value.className = "value mono";
    value.textContent = t("lesson.progress", { value: shown(result?.value, check.quantity), goal: target(check) });
    const mark = document.createElement("span");
    mark.className = "mark";
    mark.setAttribute("aria-label", result?.met ? t("lesson.check_met") : t("lesson.check_open"));
    mark.textContent = result?.met ? "✓" : "○";
    li.append(mark, label, value);
    return li;
  }));
  const met = Boolean(state.progress?.met);
  $("#lesson-met").hidden = !met;
  $("#lesson-done").textContent = met ? s.done : "";
  // Met: the step's closing words take the hint's place (it would only push the nav down).
  if (met) { $("#lesson-hint").hidden = true; $("#lesson-hint-btn").hidden = true; }
  else if ($("#lesson-hint").hidden) $("#lesson-hint-btn").hidden = !s.hint || !controls;
  if (met) {
    remember(state.lesson.id, s.id, true);
    renderDots();
  }
}

// --- the step ---------------------------------------------------------------------------------
function paragraphs(text) {
  return text.split("\n").filter((p) => p.trim()).map((p) => {
    const el = document.createElement("p");
    el.textContent = p;
    return el;
  });
}

function renderDots() {
  const done = saved()[state.lesson.id]?.done ?? [];
  $("#lesson-dots").replaceChildren(...state.lesson.steps.map((s, k) => {
    const li = document.createElement("li");
    const a = document.createElement("a");
    a.href = stepUrl(k);
    a.textContent = String(k + 1);
    a.title = s.title;
    a.className = [k === state.index ? "current" : "", done.includes(s.id) ? "done" : ""].join(" ").trim();
    if (k === state.index) a.setAttribute("aria-current", "step");
    a.addEventListener("click", (ev) => { ev.preventDefault(); if (controls) go(k); });
    li.append(a);
    return li;
  }));
}

function renderStep() {
  const s = step();
  const total = state.lesson.steps.length;
  $("#lesson-choose").hidden = true;
  $("#lesson-step").hidden = false;
  $("#lesson-nav").hidden = !controls;
  $(".lesson-keys").hidden = !controls;
  $("#lesson-watching").hidden = controls;
  $("#lesson-h").textContent = state.lesson.title;
  $("#lesson-count").textContent = t("lesson.step_of", { n: state.index + 1, total });
  $("#lesson-step-title").textContent = s.title;
  $("#lesson-text").replaceChildren(...paragraphs(s.text));
  $("#lesson-goal").hidden = !s.goal;
  $("#lesson-free").hidden = Boolean(s.goal);
  $("#lesson-hint").hidden = true;
  $("#lesson-hint").textContent = s.hint || "";
  $("#lesson-hint-btn").hidden = !s.hint || !controls;
  $("#lesson-answer").hidden = !s.goal?.answer || !controls;
  $("#lesson-answer-input").value = "";
  $("#lesson-prev").disabled = state.index === 0;
  $("#lesson-next").textContent = state.index === total - 1 ? t("lesson.finish") : t("lesson.next");
  if (s.goal) renderChecks();
  renderDots();
  panel.scrollTop = 0; // a new step starts at its title
  highlight();
  clearTimeout(state.hintTimer);
  if (s.hint && controls) state.hintTimer = setTimeout(() => { if (!state.progress?.met) showHint(); }, HINT_AFTER_MS);
}

function showHint() {
  $("#lesson-hint").hidden = false;
  $("#lesson-hint-btn").hidden = true;
}

// --- highlight: a class on the step's targets, again after every redraw of the page ----------
let highlightQueued = false;
function highlight() {
  for (const el of document.querySelectorAll(".lesson-highlight")) el.classList.remove("lesson-highlight");
  if (panel.hidden || !step()) return;
  for (const h of step().highlight) for (const el of document.querySelectorAll(h.selector)) el.classList.add("lesson-highlight");
}
new MutationObserver(() => {
  if (highlightQueued) return;
  highlightQueued = true;
  requestAnimationFrame(() => { highlightQueued = false; highlight(); });
}).observe(document.body, { childList: true, subtree: true });

// --- moving between steps ----------------------------------------------------------------------
function stepUrl(k) {
  const url = new URL(`/learn/${encodeURIComponent(state.lesson.id)}/${encodeURIComponent(state.lesson.steps[k].id)}`, location.origin);
  for (const name of ["session", "lang", "present"]) {
    const v = new URLSearchParams(location.search).get(name);
    if (v) url.searchParams.set(name, v);
  }
  return url.pathname + url.search;
}

// The step's setup through the page's own (queued) control requests: the settings panels and
// the drawing follow as after any click; then a reset, so the step starts at epoch 0.
function applySetup(s) {
  if (!controls || !window.htmx || !Object.keys(s.fields).length) return;
  // From the panel, so the page knows the step's text explains the new network (no toast).
  htmx.ajax("POST", "/ui/sessions/{sid}/config", { source: panel, values: s.fields, swap: "none" });
  htmx.ajax("POST", "/ui/sessions/{sid}/transport", { source: panel, values: { op: "reset" }, swap: "none" });
}

function tellServer() {
  const s = step();
  const key = s ? `${state.lesson.id}/${s.id}` : "";
  if (!controls || !window.htmx || !sessionId() || key === state.pushed) return;
  state.pushed = key;
  htmx.ajax("POST", "/ui/sessions/{sid}/lesson", {
    source: document.body, swap: "none", values: s ? { lesson: state.lesson.id, step: s.id } : {},
  });
}

function show(index, { apply }) {
  state.index = Math.max(0, Math.min(index, state.lesson.steps.length - 1));
  state.progress = null;
  state.answer = null;
  state.shownAt = performance.now();
  const s = step();
  remember(state.lesson.id, s.id, false);
  if (controls) localStorage.setItem(OPEN, JSON.stringify({ lesson: state.lesson.id, step: s.id }));
  if (controls) history.replaceState(null, "", stepUrl(state.index));
  if (apply) applySetup(s);
  renderStep();
  tellServer();
  poll();
}

function go(index) {
  if (index >= state.lesson.steps.length) { chooseLesson(); return; } // the end: back to the list
  show(index, { apply: true });
}

async function openLesson(lessonId, stepId, { apply }) {
  const lesson = await getJson(`/api/lessons/${encodeURIComponent(lessonId)}?lang=${lang()}`);
  if (!lesson) { chooseLesson(); return; }
  state.lesson = lesson;
  const index = Math.max(0, lesson.steps.findIndex((s) => s.id === stepId));
  setOpen(true);
  show(index, { apply });
}

async function chooseLesson() {
  setOpen(true);
  if (state.lesson && controls) { // the list (Finish, All lessons): a reload no longer sets a step up
    const url = new URL(stepUrl(state.index), location.origin);
    history.replaceState(null, "", `/${url.search}`);
  }
  state.lesson = null;
  clearTimeout(state.hintTimer);
  highlight();
  $("#lesson-step").hidden = true;
  $("#lesson-nav").hidden = true;
  $(".lesson-keys").hidden = true; // no step to move between, and the list is already shown
  $("#lesson-choose").hidden = false;
  $("#lesson-h").textContent = t("lesson.title");
  const data = await getJson(`/api/lessons?lang=${lang()}`);
  const progress = saved();
  $("#lesson-list").replaceChildren(...(data?.lessons ?? []).map((lesson) => {
    const li = document.createElement("li");
    const a = document.createElement("a");
    const last = progress[lesson.id]?.last;
    a.href = `/learn/${lesson.id}/${last || lesson.steps[0].id}?lang=${lang()}`;
    a.textContent = lesson.title;
    a.addEventListener("click", (ev) => { if (!controls) return; ev.preventDefault(); openLesson(lesson.id, last || lesson.steps[0].id, { apply: true }); });
    const p = document.createElement("p");
    const done = (progress[lesson.id]?.done ?? []).length;
    const exercises = lesson.steps.filter((s) => s.exercise).length;
    p.textContent = `${lesson.summary} ${t("lesson.done_count", { n: Math.min(done, exercises), total: exercises })}`;
    li.append(a, p);
    return li;
  }));
}

function setOpen(open) {
  panel.hidden = !open;
  document.body.classList.toggle("lesson-open", open);
  $("#btn-lessons")?.setAttribute("aria-expanded", open ? "true" : "false");
  if (!open) {
    localStorage.removeItem(OPEN);
    clearTimeout(state.hintTimer);
    if (state.lesson) { state.lesson = null; tellServer(); }
  }
  highlight();
  window.dispatchEvent(new Event("resize")); // the playground's drawings take the new width
}

// --- progress ---------------------------------------------------------------------------------
function applyUpdate(update) {
  if (!controls && update?.lesson && (update.lesson !== state.lesson?.id || update.step !== step()?.id)) {
    openLesson(update.lesson, update.step, { apply: false }); // a watcher follows the teacher's step
    return;
  }
  if (!controls && update && !update.lesson && !panel.hidden) { setOpen(false); return; }
  if (!step() || update?.lesson !== state.lesson.id || update.step !== step().id) return;
  // The stream tells a new step at once, with no progress yet (it is evaluated on the next
  // frame, and a paused session sends none): keep the poll's, or the goal flickers to "now –".
  if (!update.progress) return;
  state.progress = update.progress;
  if (step().goal) renderChecks();
}

async function poll() {
  clearTimeout(state.pollTimer);
  state.pollTimer = setTimeout(poll, POLL_MS);
  const sid = sessionId();
  if (!sid || document.hidden || (!controls && state.streamed)) return;
  if (controls && (panel.hidden || !step()?.goal)) return;
  // While the step's setup (or any control request) is still on its way, the server would
  // judge the previous step's network ("now Circle · goal Digits"): ask again in a moment.
  if (controls && controlBusy()) return;
  const query = new URLSearchParams({ lang: lang() });
  if (controls) {
    query.set("lesson", state.lesson.id);
    query.set("step", step().id);
    if (state.answer !== null) query.set("answer", String(state.answer));
  }
  applyUpdate(await getJson(`/api/sessions/${encodeURIComponent(sid)}/lesson?${query}`));
}
document.addEventListener("mlp:lesson", (ev) => { state.streamed = true; applyUpdate(ev.detail); });

// --- wiring -------------------------------------------------------------------------------------
// ] and [ (not PageUp/PageDown: those scroll the panel's text). Never while typing, with a
// modifier held, or behind an open dialog.
function onKey(ev) {
  if (panel.hidden || !state.lesson || !controls) return;
  if (ev.ctrlKey || ev.altKey || ev.metaKey || document.querySelector("dialog[open]")) return;
  if (ev.target.closest?.("input, textarea, select, [contenteditable]")) return;
  if (ev.key === "]") { ev.preventDefault(); go(state.index + 1); }
  else if (ev.key === "[") { ev.preventDefault(); if (state.index > 0) go(state.index - 1); }
}

function init() {
  if (!panel) return;
  $("#btn-lessons")?.addEventListener("click", () => {
    if (!panel.hidden) { setOpen(false); return; }
    const open = JSON.parse(localStorage.getItem(OPEN) || "null");
    if (open) openLesson(open.lesson, open.step, { apply: false });
    else chooseLesson();
  });
  $("#lesson-close").addEventListener("click", () => setOpen(false));
  $("#lesson-all").addEventListener("click", (ev) => { ev.preventDefault(); chooseLesson(); });
  $("#lesson-prev").addEventListener("click", () => go(state.index - 1));
  $("#lesson-next").addEventListener("click", () => go(state.index + 1));
  $("#lesson-restart")?.addEventListener("click", () => show(state.index, { apply: true }));
  $("#lesson-hint-btn").addEventListener("click", showHint);
  $("#lesson-answer").addEventListener("submit", (ev) => {
    ev.preventDefault();
    const value = parseFloat($("#lesson-answer-input").value.replace(",", ".").replace("%", ""));
    state.answer = Number.isFinite(value) ? value : null;
    poll();
  });
  document.addEventListener("keydown", onKey);
  document.addEventListener("visibilitychange", () => { if (!document.hidden) poll(); });
  // The server tells its page's session's step only once the session exists (created on load).
  const waitForSession = setInterval(() => { if (sessionId()) { clearInterval(waitForSession); tellServer(); poll(); } }, 200);
  const { lesson, step: stepId } = panel.dataset;
  const open = JSON.parse(localStorage.getItem(OPEN) || "null");
  if (lesson) openLesson(lesson, stepId, { apply: false }); // a /learn page: the server set the step up
  else if (open && controls) openLesson(open.lesson, open.step, { apply: false });
  else if (!controls) poll();
}

init();
