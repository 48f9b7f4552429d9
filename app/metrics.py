"""For operators: the server's numbers in the Prometheus text format (GET /metrics, app/routes/meta.py).

Everything but the HTTP response counts is read from the session store when Prometheus
scrapes (StoreCollector), so no gauge has to be kept in step with the store. Each app has a
registry of its own: several apps in one process (the tests) do not collide, and the
process-wide default registry (Python's gc and the like) is not served. Every sample carries
`node` (NODE_ID, or "local"), so one Prometheus can scrape every node of a cluster.

The workers do not report how long a tick takes. What stands in for it: the workers' CPU
time per frame, rate(mlp_process_cpu_seconds_total{process=~"worker-.*"}) over
rate(mlp_frames_published_total) (an upper bound: unwatched running sessions tick without
sending frames).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry, Counter, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4
from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric

from app.settings import Settings
from app.store import SessionStore, rss_bytes

CONTENT_TYPE = CONTENT_TYPE_PLAIN_0_0_4  # the text format every Prometheus version reads
STATUS_CLASSES = ("1xx", "2xx", "3xx", "4xx", "5xx")

# store.stats() key -> (metric, help): the same numbers /api/stats shows, under one name each.
STORE_GAUGES = {
    "sessions": ("mlp_sessions", "Sessions held by this node"),
    "running": ("mlp_sessions_running", "Sessions training now"),
    "watchers": ("mlp_watchers", "Viewers counted by the sessions (one per open stream of a live session)"),
    "streams": ("mlp_streams", "Open event streams, including those of sessions that just ended"),
    "memory_estimate_bytes": ("mlp_memory_estimate_bytes", "The sessions' memory estimates together (MAX_MEMORY_MB)"),
    "pending_calls": ("mlp_pending_calls", "Commands sent to the workers and not answered yet"),
    "tasks": ("mlp_asyncio_tasks", "asyncio tasks of the server process"),
    "threads": ("mlp_threads", "Threads of the server process"),
}


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU time of a process (Linux /proc; None elsewhere or once it has gone)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            # The command name (field 2) may hold spaces and ')': count the fields after its last ')'.
            fields = f.read().rpartition(")")[2].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # fields 14 and 15: utime, stime
    except (OSError, ValueError, IndexError):
        return None


class StoreCollector:
    """The session store's state at scrape time. Runs on the event loop (the /metrics route
    is async), the only thread that changes the store."""

    def __init__(self, node: str, store: Callable[[], SessionStore | None]):
        self.node, self.store = node, store

    def collect(self) -> Iterator[Metric]:
        store = self.store()
        if store is None:  # the app's lifespan has not started the store yet
            return
        stats = store.stats()
        for key, (name, text) in STORE_GAUGES.items():
            yield self._gauge(name, text, stats[key])
        yield self._gauge(
            "mlp_relayed_watchers",
            "Streams this node serves of other nodes' sessions (relayed through Redis)",
            store.relayed_watchers(),
        )
        frames = CounterMetricFamily(
            "mlp_frames_published", "Frames published by sessions; rate() gives frames/s", labels=["node"]
        )
        frames.add_metric([self.node], store.frames_published)
        yield frames
        fps = store.pace.fps  # None when no watched session ran through the last round
        yield self._gauge(
            "mlp_stream_fps_median",
            "Median frames/s a watched running session got in the last housekeeping round",
            float("nan") if fps is None else fps,
        )
        yield self._gauge("mlp_busy", "1 when streams get under 80 % of the frame rate they asked for", store.pace.busy)
        yield from self._workers(store)
        yield from self._processes(store)

    def _gauge(self, name: str, text: str, value: float) -> GaugeMetricFamily:
        g = GaugeMetricFamily(name, text, labels=["node"])
        g.add_metric([self.node], float(value))
        return g

    def _workers(self, store: SessionStore) -> Iterator[Metric]:
        health = store.health()
        yield self._gauge(
            "mlp_workers_live", "Workers heard from within the heartbeat timeout", sum(h["live"] for h in health)
        )
        age = GaugeMetricFamily(
            "mlp_worker_heartbeat_age_seconds", "Seconds since a worker's last heartbeat", labels=["node", "worker"]
        )
        for h in health:
            if h["heartbeat_age_s"] is not None:
                age.add_metric([self.node, str(h["index"])], h["heartbeat_age_s"])
        yield age

    def _processes(self, store: SessionStore) -> Iterator[Metric]:
        labels = ["node", "process"]
        cpu = CounterMetricFamily("mlp_process_cpu_seconds", "User and system CPU time of a process", labels=labels)
        rss = GaugeMetricFamily("mlp_process_resident_memory_bytes", "Resident memory of a process", labels=labels)
        procs = [("server", os.getpid())] + [(f"worker-{w.index}", w.proc.pid) for w in store.workers if w.proc.pid]
        for name, pid in procs:
            seconds, resident = cpu_seconds(pid), rss_bytes(pid)
            if seconds is not None:
                cpu.add_metric([self.node, name], seconds)
            if resident is not None:
                rss.add_metric([self.node, name], resident)
        yield cpu
        yield rss


class Metrics:
    """One app's registry: the HTTP responses counted as they are sent (CountResponses in
    app/middleware.py calls `count_response`), the rest read from the store when scraped."""

    def __init__(self, settings: Settings, store: Callable[[], SessionStore | None]):
        self.node = settings.node_id or "local"
        self.registry = CollectorRegistry()
        self.responses = Counter(
            "mlp_http_responses",
            "HTTP responses sent, by status class",
            ["node", "status_class"],
            registry=self.registry,
        )
        for status_class in STATUS_CLASSES:  # every class is listed, at 0 until its first response
            self.responses.labels(self.node, status_class)
        self.registry.register(StoreCollector(self.node, store))

    def count_response(self, status: int) -> None:
        if 100 <= status < 600:
            self.responses.labels(self.node, f"{status // 100}xx").inc()

    def exposition(self) -> bytes:
        return generate_latest(self.registry)
