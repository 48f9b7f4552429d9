"""The session store against an in-process worker: no processes, no pipes, no HTTP.

InProcessWorker stands where a WorkerProcess stands: `call` runs the command through a real
app.worker.Worker at once and hands back its reply, so these tests pin the store's own
rules (ids, tokens, limits, eviction, ended sessions, handover, frames) fast and exactly.
"""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor

import pytest

from app import protocol as cmd
from app.errors import FieldError
from app.schema import ConfigFields, SessionConfig
from app.settings import Settings
from app.store import SessionStore, Watcher
from app.training import Status
from app.worker import Worker, WorkerConfig


class InProcessWorker:
    def __init__(self, index: int, conf: WorkerConfig, on_message):
        self.index, self.sessions, self.pending = index, set(), {}
        self.frames: list[tuple] = []
        self._replies: dict[int, tuple] = {}
        self._rid = 0

        def send(msg):
            if msg[0] == "reply":
                self._replies[msg[1]] = msg[2:]
            else:
                self.frames.append(msg)
                on_message(msg)

        self.worker = Worker(conf, send)

    async def call(self, command: cmd.Command):
        self._rid += 1
        self.worker.handle((self._rid, command))
        ok, payload = self._replies.pop(self._rid)
        if not ok:
            field, message, code, params = payload
            raise FieldError(field, message, code=code, **params)
        return payload

    def stop(self) -> None:
        pass


def make_store(**settings) -> SessionStore:
    store = SessionStore(Settings(workers=2, grid=16, **settings))
    store.loop = asyncio.get_running_loop()
    store.workers = [InProcessWorker(i, store._conf, store._on_frame) for i in range(2)]
    return store


def run(coro):
    """asyncio.run in a thread of its own: a browser test's Playwright may hold this thread's loop."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coro).result()


def test_sessions_spread_over_workers_and_keep_their_config():
    async def main():
        store = make_store()
        a = await store.create(SessionConfig(seed=1))
        b = await store.create(SessionConfig(seed=2, dataset="xor"))
        assert a.worker is not b.worker  # least-loaded placement
        assert len(a.id) >= 32 and len(a.token) >= 43 and a.id != b.id  # 192 and 256 bits
        assert b.config.dataset == "xor" and b.status == Status.PAUSED

    run(main())


def test_a_change_updates_the_record_from_the_workers_reply():
    async def main():
        store = make_store()
        r = await store.create(SessionConfig(seed=1))
        result = await store.call(r, cmd.Change(r.id, ConfigFields(learning_rate=0.3)))
        assert "config" not in result and r.config.learning_rate == 0.3
        await store.call(r, cmd.Change(r.id, ConfigFields(noise=0.2)))  # another field, later
        assert (r.config.learning_rate, r.config.noise) == (0.3, 0.2)  # the first change is kept

    run(main())


def test_tokens_are_checked():
    async def main():
        store = make_store()
        r = await store.create(SessionConfig(seed=1))
        assert store.authorize(r.id, r.token) is r
        with pytest.raises(FieldError) as missing:
            store.authorize(r.id, None)
        with pytest.raises(FieldError) as wrong:
            store.authorize(r.id, r.token[:-1] + ("A" if r.token[-1] != "A" else "B"))
        assert (missing.value.code, wrong.value.code) == ("auth_missing", "auth_wrong")

    run(main())


def test_an_ended_session_answers_gone_with_its_successor():
    async def main():
        store = make_store()
        old, new = await store.create(SessionConfig(seed=1)), await store.create(SessionConfig(seed=2))
        await store.hand_over(old, new)
        with pytest.raises(FieldError) as gone:
            store.get(old.id)
        assert gone.value.code == "session_gone" and gone.value.params == {"reason": "moved", "successor": new.id}
        assert old.closed == "moved" and old.id not in old.worker.worker.slots
        with pytest.raises(FieldError) as unknown:
            store.get("no-such-id")
        assert unknown.value.code == "session_unknown"

    run(main())


def test_at_the_limit_idle_sessions_are_evicted_and_busy_ones_refuse():
    async def main():
        store = make_store(max_sessions=2, session_ttl_seconds=0)
        first = await store.create(SessionConfig(seed=1))
        second = await store.create(SessionConfig(seed=2))
        first.last_active = second.last_active = 0.0  # idle for ever
        third = await store.create(SessionConfig(seed=3))  # evicts the idle ones
        assert set(store.sessions) == {third.id}
        await asyncio.sleep(0)  # the eviction's worker deletes run as tasks
        fourth = await store.create(SessionConfig(seed=4))
        await store.add_watcher(third, Watcher(30.0))
        await store.add_watcher(fourth, Watcher(30.0))
        with pytest.raises(FieldError) as full:
            await store.create(SessionConfig(seed=5))
        assert full.value.code == "limit_sessions" and full.value.params == {"max": 2}

    run(main())


def test_frames_reach_the_record_newest_only():
    async def main():
        store = make_store()
        r = await store.create(SessionConfig(seed=1))
        await store.add_watcher(r, Watcher(30.0))
        seq = r.seq
        await store.call(r, cmd.Step(r.id))
        await store.call(r, cmd.Step(r.id))
        assert r.seq > seq and r.frame is not None and '"epoch":2' in r.frame.replace(" ", "")
        assert r.status == Status.PAUSED

    run(main())


def test_the_watcher_limit_is_kept():
    async def main():
        store = make_store(max_watchers=1)
        r = await store.create(SessionConfig(seed=1))
        await store.add_watcher(r, Watcher(10.0))
        with pytest.raises(FieldError) as full:
            await store.add_watcher(r, Watcher(10.0))
        assert full.value.code == "limit_watchers" and len(r.watchers) == 1

    run(main())
