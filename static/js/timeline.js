// The timeline scrubber: move back and forth through the session's checkpoints (the view
// shows the network, boundary and loss at that point), resume training from one, or go
// back to live. The list of checkpoint epochs is fetched when the scrubber is used.
import { t } from "./i18n.js";

export function createTimeline(root, { sessionId, api, onError }) {
  const scrub = root.querySelector("#scrub");
  const label = root.querySelector("#scrub-epoch");
  const resume = root.querySelector("#btn-resume");
  const live = root.querySelector("#btn-live");
  const viewing = document.querySelector("#viewing");
  let epochs = [];
  let count = -1;
  let fetching = null; // the refresh in flight, so callers can wait for it
  let pending = null; // newest epoch asked for while a view request is in flight
  let inFlight = false;

  // The checkpoint list is fetched when the scrubber is used, not on every frame (it
  // changes every epoch while training).
  function refresh() {
    fetching ||= (async () => {
      try {
        const res = await fetch(`/api/sessions/${sessionId()}/timeline`);
        if (res.ok) {
          epochs = (await res.json()).epochs;
          scrub.max = String(Math.max(0, epochs.length - 1));
        }
      } finally {
        fetching = null;
      }
    })();
    return fetching;
  }

  // Dragging asks for one preview at a time; the newest position wins.
  async function view(epoch) {
    pending = epoch;
    if (inFlight) return;
    inFlight = true;
    while (pending !== null) {
      const e = pending;
      pending = null;
      await api("/timeline/view", { body: { epoch: e } }).catch(onError);
    }
    inFlight = false;
  }

  const prepare = () => { if (epochs.length !== count) refresh(); };
  for (const ev of ["pointerdown", "focus", "keydown"]) scrub.addEventListener(ev, prepare);
  // While the hand is on the slider, frames must not move it (training frames keep coming
  // until the first preview request has paused the session).
  let dragging = false;
  scrub.addEventListener("pointerdown", () => { dragging = true; });
  for (const ev of ["pointerup", "pointercancel"]) window.addEventListener(ev, () => { dragging = false; });

  let choosing = false; // between a move of the slider and its preview request
  scrub.addEventListener("input", async () => {
    const index = +scrub.value; // before any await: a frame may move the slider meanwhile
    choosing = true;
    try {
      if (epochs.length !== count) await refresh();
    } finally {
      choosing = false;
    }
    const epoch = epochs[index];
    if (epoch === undefined) return;
    scrub.value = String(index);
    label.textContent = t("teach.epoch_n", { n: epoch });
    view(epoch);
  });
  resume.addEventListener("click", () => {
    const epoch = epochs[+scrub.value];
    if (epoch !== undefined) api("/timeline/resume", { body: { epoch } }).catch(onError);
  });
  live.addEventListener("click", () => api("/timeline/view", { body: { epoch: null } }).catch(onError));
  root.querySelector("#btn-rewind").addEventListener("click", () => api("/reset").catch(onError));

  return {
    update(frame) {
      const tl = frame.timeline;
      if (!tl) return;
      const v = tl.viewing ?? null;
      if (tl.count !== count) {
        count = tl.count;
        scrub.max = String(Math.max(0, count - 1));
      }
      // The slider shows what the view shows: the checkpoint being viewed, or live (the end).
      if (!dragging && !choosing && !inFlight && pending === null) {
        const at = v === null ? -1 : epochs.indexOf(v);
        if (v === null) scrub.value = scrub.max;
        else if (at >= 0) scrub.value = String(at);
        label.textContent = t("teach.epoch_n", { n: v ?? tl.last });
      }
      viewing.hidden = v === null;
      resume.disabled = live.disabled = viewing.hidden;
      if (!viewing.hidden) {
        viewing.dataset.epoch = String(v);
        viewing.textContent = t("teach.viewing", { n: v });
      }
    },
  };
}
