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

  const viewingEpoch = () => (viewing.hidden ? null : +viewing.dataset.epoch);

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

  scrub.addEventListener("input", async () => {
    if (epochs.length !== count) await refresh();
    const epoch = epochs[+scrub.value];
    if (epoch === undefined) return;
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
      if (tl.count !== count) {
        count = tl.count;
        scrub.max = String(Math.max(0, count - 1));
        if (viewingEpoch() === null) {
          scrub.value = scrub.max;
          label.textContent = t("teach.epoch_n", { n: tl.last });
        }
      }
      const v = tl.viewing;
      viewing.hidden = v === null || v === undefined;
      resume.disabled = live.disabled = viewing.hidden;
      if (!viewing.hidden) {
        viewing.dataset.epoch = String(v);
        viewing.textContent = t("teach.viewing", { n: v });
      }
    },
    get viewing() { return viewingEpoch(); },
  };
}
