"""Shared embed sessions: every reader of the same embed setup watches one session.

A wiki page read by 500 people would otherwise train 500 identical networks. Readers of
an identical `/embed?…` setup (its normalised config, seed included; `autoplay` apart) or
of the same `/embed/snapshot/{id}` join one *broadcast* session instead. Its training costs
the same for 1 reader or 500. No reader holds its control token.

- An autoplay broadcast starts when its first reader looks at it (app/lifecycle.py: it waits
  as "paused until watched"), and pauses like any session when nobody looks.
- The first time a reader changes anything, `fork` gives that reader a session of their
  own, continuing from the broadcast's weights and epoch (the worker's Export payload, the
  same document a saved snapshot holds), running if the broadcast was.
- A broadcast nobody watches ends like a released session (app/lifecycle.py); the next
  reader starts a new one.
"""

from __future__ import annotations

import asyncio
import json
import time

from app import protocol as cmd
from app.control import Control
from app.errors import FieldError
from app.schema import ConfigFields, SessionConfig, resolve
from app.store import SessionRecord, SessionStore
from app.training import Status

ANY_SEED = -1  # in a key: the query named no seed, so any reader's seed will do


def setup_key(cfg: SessionConfig, seed_named: bool, autoplay: bool) -> str:
    """One string per embed setup: the normalised config (seed only when the query names it)."""
    dumped = cfg.model_dump(mode="json")
    if not seed_named:
        dumped["seed"] = ANY_SEED
    return json.dumps({"config": dumped, "autoplay": autoplay}, sort_keys=True)


class Broadcasts:
    """The broadcast sessions of a server, by setup key."""

    def __init__(self, store: SessionStore, control: Control):
        self.store, self.control = store, control
        self.by_key: dict[str, str] = {}  # setup key -> session id (stale ids are dropped on lookup)
        self._making: dict[str, asyncio.Future] = {}  # a key whose session is being made: later readers wait

    def live(self, key: str) -> SessionRecord | None:
        sid = self.by_key.get(key)
        record = self.store.sessions.get(sid) if sid is not None else None
        if record is None or record.closed is not None:
            self.by_key.pop(key, None)
            return None
        return record

    async def join_query(self, fields: ConfigFields, autoplay: bool) -> SessionRecord:
        """The broadcast of an `/embed?…` setup, made by its first reader."""
        cfg = resolve(None, fields, self.control.limits)
        key = setup_key(cfg, fields.seed is not None, autoplay)
        return await self._join(key, autoplay, lambda: self.store.create(cfg))

    async def join_snapshot(self, snapshot_id: str, autoplay: bool) -> SessionRecord:
        """The broadcast of an `/embed/snapshot/{id}`: a session with the snapshot's weights."""
        key = json.dumps({"snapshot": snapshot_id, "autoplay": autoplay})
        return await self._join(key, autoplay, lambda: self.control.create_from_snapshot(snapshot_id))

    async def _join(self, key: str, autoplay: bool, make) -> SessionRecord:
        found = self.live(key)
        if found is not None:
            found.last_active = time.monotonic()  # a reader arrived: not unused yet
            return found
        pending = self._making.get(key)
        if pending is not None:  # 200 readers arriving at once make one session
            return await asyncio.shield(pending)
        future = asyncio.get_running_loop().create_future()
        self._making[key] = future
        try:
            record = await make()
            record.life.broadcast = key
            record.life.resume_on_watch = autoplay  # plays when its first reader looks
            self.by_key[key] = record.id
            future.set_result(record)
            return record
        except BaseException as e:
            future.set_exception(e)
            future.exception()  # retrieved: no "never retrieved" warning when nobody else waited
            raise
        finally:
            self._making.pop(key, None)

    async def fork(self, sid: str) -> SessionRecord:
        """A reader's own copy of a broadcast: same config, weights, epoch and history, and
        running if the broadcast was. The reader gets its control token."""
        record = self.store.get(sid)
        if record.life.broadcast is None:
            raise FieldError("id", "this session is not a shared embed session", code="not_broadcast")
        payload = await self.store.call(record, cmd.Export(record.id))
        running = record.status == Status.RUNNING or record.life.resume_on_watch
        data = await asyncio.to_thread(lambda: json.dumps(payload).encode())
        copy = await self.store.create(record.config, payload_json=data)
        copy.life.used = True  # a reader's change is on its way
        if running:
            await self.store.call(copy, cmd.Play(copy.id))
        return copy
