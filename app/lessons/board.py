"""What the server remembers of a session's lesson, in the server process: the step its
controlling page shows (so watchers see the same step), what was observed before (a session
that diverged and was then reset has no trace of it in its own state), and the progress last
sent on its stream. Bounded: the least recently used sessions are forgotten first."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Container
from dataclasses import dataclass, field

CAPACITY = 4096  # sessions remembered; more than a server holds (MAX_SESSIONS is 200 by default)


@dataclass
class SessionLesson:
    lesson: str | None = None
    step: str | None = None
    seen: set[str] = field(default_factory=set)  # observed states: "diverged"
    progress: dict | None = None  # the progress last evaluated for the step
    version: int = 0  # bumped when the step or its progress changes: streams send it again
    evaluated_seq: int = -1  # the frame the progress was evaluated on
    evaluated_at: float = float("-inf")
    data: tuple[int, dict] | None = None  # (shape_version, GET …/data) for a goal on the points
    answer: float | None = None  # the number the controlling page's learner typed for this step
    event: tuple[int, str] | None = None  # (version, the lesson event's JSON): encoded once for all streams


class Board:
    def __init__(self, capacity: int = CAPACITY):
        self.capacity = capacity
        self._sessions: OrderedDict[str, SessionLesson] = OrderedDict()

    def __len__(self) -> int:
        return len(self._sessions)

    def get(self, sid: str) -> SessionLesson | None:
        return self._sessions.get(sid)

    def of(self, sid: str) -> SessionLesson:
        entry = self._sessions.get(sid)
        if entry is None:
            entry = self._sessions[sid] = SessionLesson()
            while len(self._sessions) > self.capacity:
                self._sessions.popitem(last=False)
        self._sessions.move_to_end(sid)
        return entry

    def observe(self, sid: str, status: str | None) -> frozenset[str]:
        """Note what this status shows (a diverged network) and return all that was seen."""
        if status == "diverged":
            self.of(sid).seen.add("diverged")
        entry = self._sessions.get(sid)
        return frozenset(entry.seen) if entry else frozenset()

    def set_step(self, sid: str, lesson: str | None, step: str | None) -> SessionLesson:
        entry = self.of(sid)
        if (entry.lesson, entry.step) != (lesson, step):
            entry.lesson, entry.step, entry.progress = lesson, step, None
            # Each step starts afresh: an earlier step's divergence must not meet this one's goal.
            entry.seen.clear()
            entry.data, entry.answer, entry.evaluated_seq = None, None, -1
            entry.version += 1
        return entry

    def set_progress(self, sid: str, progress: dict | None) -> bool:
        """Keep the step's progress; True when it differs from the last one (send it again)."""
        entry = self.of(sid)
        if entry.progress == progress:
            return False
        entry.progress = progress
        entry.version += 1
        return True

    def forget(self, sid: str) -> None:
        self._sessions.pop(sid, None)

    def keep_only(self, alive: Container[str]) -> None:
        """Forget the sessions that have ended (called when a page changes its step)."""
        for sid in [s for s in self._sessions if s not in alive]:
            del self._sessions[sid]
