"""How long a session lives, and when it trains: the rules, as pure functions of the records.

The session store (app/store.py) keeps a `Life` on every record and applies these rules
from the housekeeping loop and when it is full; nothing here calls a worker.

- **Released.** A page going away (pagehide) releases its session with the control
  token. It ends `release_grace_seconds` after that once nobody watches it, so a reload
  within the grace (which takes the release back) keeps it. A broadcast (an embed shared
  by its readers, app/broadcast.py) has no owner: once its last reader has gone, it ends
  the same way.
- **Unused.** A session nobody played, changed or controlled (a page view) ends
  `unused_session_seconds` after its last viewer left, even when its release never came.
- **Expired.** A used session ends `session_ttl_seconds` after its last activity, as before.
- **Nobody looks.** A running session whose viewers all left or hid their page (a hidden
  page closes its stream) pauses after `hidden_pause_seconds`, and plays again when a viewer
  comes back. A session with a viewer is never paused, so students watching a classroom
  session keep the teacher's session running. Viewers on other nodes (REDIS_URL, app/relay.py)
  count the same as this node's.
- **Full.** At MAX_SESSIONS the least recently active session nobody watches makes room;
  when every session is watched, the new one is refused.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol, TypeVar

from app.settings import Settings
from app.training import Status


@dataclass
class Life:
    """What the rules need to know about a session beyond its status and viewers."""

    used: bool = False  # a control request reached it (played, changed, stepped …) after it was made
    released_at: float | None = None  # when its page released it (None: held, or taken back)
    left_at: float | None = None  # when its last viewer left; None while watched or never watched
    resume_on_watch: bool = False  # paused because nobody looked (or an autoplay broadcast not yet seen)
    broadcast: str | None = None  # the key of the embed setup it is shared for (app/broadcast.py)


class Record(Protocol):
    """The part of app.store.SessionRecord the rules read."""

    id: str
    status: Status
    last_active: float
    life: Life

    @property
    def viewers(self) -> int: ...  # streams on this node and, with REDIS_URL, on other nodes


R = TypeVar("R", bound=Record)


def control(life: Life) -> None:
    """A control request with the session's token: it is used, and a release is taken back."""
    life.used = True
    life.released_at = None


def release(life: Life, now: float) -> None:
    life.released_at = now


def watched(life: Life) -> bool:
    """A viewer arrived: no longer left alone. True when it should play again."""
    life.left_at = None
    resume, life.resume_on_watch = life.resume_on_watch, False
    return resume


def left(life: Life, now: float) -> None:
    """Its last viewer left (a closed or hidden page, an ended stream)."""
    life.left_at = now


def quiet_since(record: Record) -> float:
    """The last moment anybody controlled or watched the session."""
    left_at = record.life.left_at
    return record.last_active if left_at is None else max(record.last_active, left_at)


def end_reason(record: Record, now: float, s: Settings) -> str | None:
    """Why the session should end now ("released", "unused", "expired"), or None."""
    if record.viewers:
        return None
    life, quiet = record.life, quiet_since(record)
    if life.released_at is not None or (life.broadcast is not None and life.left_at is not None):
        since = quiet if life.released_at is None else max(life.released_at, quiet)
        if now - since >= s.release_grace_seconds:
            return "released"
    if not life.used and now - quiet >= s.unused_session_seconds:
        return "unused"
    if record.status != Status.RUNNING and now - quiet >= s.session_ttl_seconds:
        return "expired"
    return None


def to_end(records: Iterable[R], now: float, s: Settings) -> list[tuple[R, str]]:
    found = [(r, end_reason(r, now, s)) for r in records]
    return [(r, reason) for r, reason in found if reason is not None]


def to_pause(records: Iterable[R], now: float, s: Settings) -> list[R]:
    """Running sessions nobody has looked at for `hidden_pause_seconds` since their last viewer
    left (and nobody controlled meanwhile): they pause, and play again when someone looks."""
    return [
        r
        for r in records
        if r.status == Status.RUNNING
        and not r.viewers
        and r.life.left_at is not None
        and now - quiet_since(r) >= s.hidden_pause_seconds
    ]


def eviction_order(records: Iterable[R]) -> list[R]:
    """The sessions that may make room at MAX_SESSIONS, first to go first: nobody watches them;
    released ones before held ones, then the least recently active."""
    unwatched = [r for r in records if not r.viewers]
    return sorted(unwatched, key=lambda r: (r.life.released_at is None and r.life.broadcast is None, quiet_since(r)))
