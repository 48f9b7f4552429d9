// "server busy: N frames/s": a small note beside the epoch counter when the server cannot
// give every live view the frame rate it asked for. The workers share their time fairly,
// so every stream slows by the same amount; the note says so instead of looking stalled.
//
// The page counts the frames it draws (stream.js measures each one as "mlp:apply"). While
// the network trains and that count stays below SLOW_FPS, it asks the server (GET
// /api/load, answered from the server process) whether streams in general fall behind,
// since a slow count alone may be a network that is heavy by itself.
import { t } from "./i18n.js";

const WINDOW_MS = 3000; // frames counted over this long
const SLOW_FPS = 25; // below this, ask the server whether it is busy
const applied = [];

function trimmed(now) {
  while (applied.length && applied[0] < now - WINDOW_MS) applied.shift();
  return applied.length / (WINDOW_MS / 1000);
}

function noteElement() {
  let note = document.getElementById("busy-note");
  if (note) return note;
  const epoch = document.querySelector(".transport .epoch") ?? document.getElementById("watch-status")?.parentElement;
  if (!epoch) return null;
  note = document.createElement("span");
  note.id = "busy-note";
  note.className = "caption busy-note";
  note.title = t("busy.hint");
  note.hidden = true;
  epoch.append(note);
  return note;
}

const training = () => document.getElementById("btn-play")?.dataset.state === "running";

export function startBusyNote() {
  if (!("PerformanceObserver" in window) || startBusyNote.started) return;
  startBusyNote.started = true;
  const observer = new PerformanceObserver((list) => {
    for (const entry of list.getEntries()) if (entry.name === "mlp:apply") applied.push(performance.now());
  });
  observer.observe({ entryTypes: ["measure"] });
  const started = performance.now();
  setInterval(async () => {
    const note = noteElement();
    if (!note) return;
    const now = performance.now();
    const fps = trimmed(now);
    if (document.visibilityState !== "visible" || !training() || now - started < WINDOW_MS || fps >= SLOW_FPS) {
      note.hidden = true;
      return;
    }
    const res = await fetch("/api/load").catch(() => null);
    const load = res?.ok ? await res.json().catch(() => null) : null;
    note.hidden = !load?.busy;
    note.textContent = t("busy.note", { fps: Math.round(fps) });
  }, WINDOW_MS);
}
