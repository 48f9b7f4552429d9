"""Every user action, once: the JSON API and the htmx page are two thin adapters over this.

Each action takes typed input (a config change, a structure edit, a point, a file's bytes…)
and returns a typed result: a SessionRecord, a status dict from the session's worker (with
`changed`, `rebuilt` and `reset` when the config changed), or a snapshot's metadata. Errors
are FieldErrors with a code; the web layer alone turns codes into HTTP statuses.
"""

from __future__ import annotations

import logging
import secrets
from asyncio import to_thread
from collections.abc import Mapping
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from app import protocol as cmd
from app.data import CsvError, parse_csv
from app.errors import FieldError
from app.export import data_csv, model_python
from app.presets import PRESETS
from app.querycodec import fields_from_strings
from app.ratelimit import RateLimiter, client_address
from app.schema import ConfigFields, CreateBody, Limits, SessionConfig, check_limits, resolve
from app.settings import Settings
from app.snapshot_format import parse_export, validate_payload
from app.snapshots import SnapshotError, SnapshotStore
from app.store import SessionRecord, SessionStore
from app.structure import edit_structure as structure_edited
from app.training import Status

log = logging.getLogger("mlp.snapshots")

PlaneCoordinate = Annotated[float, Field(allow_inf_nan=False, ge=-6.0, le=6.0)]


class PointBody(BaseModel):
    """A point to add: where, and its class (or regression target)."""

    model_config = ConfigDict(extra="forbid")
    x: list[PlaneCoordinate] = Field(min_length=2, max_length=2)
    label: float = Field(0, allow_inf_nan=False, description="class index, or target in [−1, 1] for regression")


class NearBody(BaseModel):
    """A place on the plane: the nearest point is removed."""

    model_config = ConfigDict(extra="forbid")
    x: list[Annotated[float, Field(allow_inf_nan=False)]] = Field(min_length=2, max_length=2)


class SaveBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field("", max_length=200, description="defaults to dataset and epoch")


class RenameBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=200)


Transport = Literal["play", "pause", "step", "reset", "toggle"]
TRANSPORT = {"play": cmd.Play, "pause": cmd.Pause, "step": cmd.Step, "reset": cmd.Reset}
# Query names that set up the page, not the config.
PAGE_PARAMS = frozenset({"lang", "session", "present", "debug", "autoplay", "hide", "preset"})
IMPORTED_NAME = "imported"


def _probably(merge, *args) -> SessionConfig | None:
    """The config a change will probably lead to, from the server's copy of the config, for the
    memory check before it is sent (the worker merges it into its current config, and names
    any problem with it); None when it does not merge here."""
    try:
        return merge(*args)
    except FieldError:
        return None


def config_fields_from_query(params: Mapping[str, str]) -> ConfigFields:
    """A page's query (or the page's form): a preset, overridden by any config values given."""
    preset = PRESETS.get(params.get("preset", ""), {})
    given = {k: v for k, v in params.items() if k not in PAGE_PARAMS}
    return fields_from_strings({**preset, **given}, ignore_unknown=True)


class Control:
    """The actions, bound to the server's session store, snapshot store and settings."""

    def __init__(self, store: SessionStore, snapshots: SnapshotStore, settings: Settings):
        self.store, self.snapshots, self.settings = store, snapshots, settings
        self.limits = Limits.of(settings)
        self.snapshot_writes = RateLimiter(settings.snapshot_writes_per_minute)  # per client address

    # --- sessions ---------------------------------------------------------------------------
    def config_from_query(self, params: Mapping[str, str]) -> SessionConfig:
        """The config a page's query describes (no session is made)."""
        return resolve(None, config_fields_from_query(params), self.limits)

    async def create(self, body: CreateBody) -> SessionRecord:
        """A session from config fields, or from a saved snapshot (not both)."""
        if body.snapshot is None:
            return await self.store.create(resolve(None, body, self.limits))
        if body.model_dump(exclude_none=True, exclude={"snapshot"}):
            raise FieldError("snapshot", "give either a snapshot or config fields, not both", code="snapshot_mixed")
        return await self.create_from_snapshot(body.snapshot)

    async def create_from_query(self, params: Mapping[str, str]) -> SessionRecord:
        return await self.store.create(self.config_from_query(params))

    async def create_from_snapshot(self, snapshot_id: str) -> SessionRecord:
        """A new session with a snapshot's config, data and weights. The payload travels to the
        worker as the stored JSON bytes and is parsed and checked there (validate_payload), so
        this process never parses or pickles a big payload."""
        meta, source = await self._source(snapshot_id, field="snapshot")
        return await self.store.create(self._snapshot_config(meta), payload_json=source)

    async def status(self, record: SessionRecord) -> dict:
        """Asked of the worker: it also waits for every earlier reply, and so for the config."""
        return await self.store.call(record, cmd.Status(record.id))

    async def reported_status(self, record: SessionRecord) -> tuple[dict, SessionConfig]:
        """The status and config the session's worker reported last (after its latest tick, and
        before every reply), answered in this process: a GET never waits behind training or
        behind frames in the pipe. The worker is asked only when it has reported nothing yet."""
        reported = record.worker.reported(record.id)
        if reported is not None:
            return reported
        status = await self.status(record)
        return status, record.config

    async def transport(self, record: SessionRecord, op: Transport) -> dict:
        if op == "toggle":
            op = "pause" if record.status == Status.RUNNING else "play"
        return await self.store.call(record, TRANSPORT[op](record.id))

    async def change(self, record: SessionRecord, fields: ConfigFields) -> dict:
        """Only the named fields change, merged into the worker's current config."""
        grows_to = _probably(resolve, record.config, fields, self.limits)
        return await self.store.call(record, cmd.Change(record.id, fields), grows_to)

    async def edit_structure(self, record: SessionRecord, edit: cmd.StructureOp) -> dict:
        grows_to = _probably(structure_edited, record.config, edit, self.limits)
        return await self.store.call(record, cmd.EditStructure(record.id, edit), grows_to)

    async def regenerate(self, record: SessionRecord) -> dict:
        return await self.store.call(record, cmd.Regenerate(record.id, secrets.randbelow(2**31)))

    async def recover(self, record: SessionRecord) -> dict:
        return await self.store.call(record, cmd.Recover(record.id))

    async def delete(self, record: SessionRecord) -> None:
        await self.store.delete(record)

    def release(self, sid: str, token: str | None, *, keep: bool = False) -> None:
        """The session's page went away (it ends after the grace), or came back (`keep`)."""
        self.store.release(sid, token, keep=keep)

    # --- what the page shows and edits by hand ---------------------------------------------------
    async def set_probe(self, record: SessionRecord, x: tuple[float, ...], snap: bool, label: int | None) -> dict:
        return await self.store.call(record, cmd.Probe(record.id, x, snap, label))

    async def set_param(self, record: SessionRecord, layer: int, i: int | None, j: int, value: float) -> dict:
        """One weight W[layer][i][j], or the bias b[layer][j] when i is None."""
        return await self.store.call(record, cmd.SetParam(record.id, layer, i, j, value))

    async def view_checkpoint(self, record: SessionRecord, epoch: int | None) -> dict:
        return await self.store.call(record, cmd.View(record.id, epoch))

    async def resume(self, record: SessionRecord, epoch: int) -> dict:
        return await self.store.call(record, cmd.Resume(record.id, epoch))

    async def hand_over(self, old: SessionRecord, to: str, to_token: str) -> SessionRecord:
        """End `old` and send its viewers to `to`; the caller must control both."""
        try:
            new = self.store.authorize(to, to_token)
        except FieldError as e:  # name the body field, not the path's session
            raise e.renamed("to") from None
        await self.store.hand_over(old, new)
        return new

    # --- data ---------------------------------------------------------------------------------
    async def add_point(self, record: SessionRecord, point: PointBody) -> dict:
        return await self.store.call(record, cmd.AddPoint(record.id, (point.x[0], point.x[1]), point.label))

    async def remove_point(self, record: SessionRecord, near: NearBody) -> dict:
        return await self.store.call(record, cmd.RemovePoint(record.id, (near.x[0], near.x[1])))

    async def upload(self, record: SessionRecord, raw: bytes) -> dict:
        """Replace the data with a CSV file's points; a bad file names its line."""
        s = self.settings
        try:
            ds = await to_thread(parse_csv, raw, max_bytes=s.max_upload_bytes, max_rows=s.max_upload_rows)
        except CsvError as e:
            field = "file" if e.line is None else f"file.line.{e.line}"
            raise FieldError(field, str(e), code=f"csv_{e.code}", **e.params) from None
        grows_to = record.config.model_copy(
            update={"dataset": "custom", "n_points": len(ds.y), "problem": ds.problem, "classes": ds.classes}
        )
        return await self.store.call(
            record, cmd.Upload(record.id, ds.X.tolist(), ds.y.tolist(), ds.problem, ds.classes), grows_to
        )

    async def export_model(self, record: SessionRecord) -> str:
        """The trained network as a standalone NumPy program."""
        model = await self.store.call(record, cmd.Model(record.id, as_json=False))
        status = await self.status(record)
        cfg = record.config
        try:
            return model_python(
                model,
                features=cfg.features if status["dims"] == 2 else None,
                problem=cfg.problem,
                title=f"MLP Playground model, epoch {status['epoch']}",
            )
        except ValueError as e:  # a diverged network has no finite weights to export
            raise FieldError("model", str(e), code="model_not_finite") from None

    async def export_data(self, record: SessionRecord) -> str:
        data = await self.store.call(record, cmd.Data(record.id, as_json=False))
        return data_csv(data, problem=record.config.problem)

    # --- snapshots ----------------------------------------------------------------------------
    async def snapshot_document(self, snapshot_id: str) -> bytes:
        """The stored snapshot as JSON bytes, read and assembled in a thread (never encoded on the loop)."""
        found = await self._stored(self.snapshots.get_document, snapshot_id)
        if found is None:
            raise FieldError("snapshot_id", "no such snapshot", code="snapshot_unknown")
        return found

    async def snapshot_config(self, snapshot_id: str) -> tuple[dict, SessionConfig]:
        """A stored snapshot's metadata and its checked config (an embed of it draws that network;
        the weights are checked when a viewer's session is made from it)."""
        meta, _ = await self._source(snapshot_id)
        return meta, self._snapshot_config(meta)

    async def _source(self, snapshot_id: str, *, field: str = "snapshot_id") -> tuple[dict, bytes]:
        found = await self._stored(self.snapshots.get_source, snapshot_id)
        if found is None:
            raise FieldError(field, "no such snapshot", code="snapshot_unknown")
        return found

    def _snapshot_config(self, meta: dict) -> SessionConfig:
        """The config part of validate_payload: a valid config within the limits."""
        try:
            cfg = SessionConfig.model_validate(meta["config"])
        except Exception as e:
            raise FieldError(
                "snapshot.config", f"the config is not valid: {e}", code="snapshot_invalid", part="config"
            ) from None
        check_limits(cfg, self.limits)
        return cfg

    async def save(self, record: SessionRecord, name: str) -> dict:
        """Store the session: config, weights, counters, history and its own data."""
        self._check_write_allowance()
        payload = await self.store.call(record, cmd.Export(record.id))
        name = name.strip() or f"{payload['config']['dataset']} · epoch {payload['epoch']}"
        return await self._save(payload, name)

    async def import_snapshot(self, raw: bytes) -> dict:
        """Store a snapshot from an exported file; a bad file names what is wrong."""
        self._check_write_allowance()
        limit = self.settings.max_snapshot_bytes
        if len(raw) > limit:
            raise FieldError(
                "file", f"the file is larger than {limit} bytes (limit max_snapshot_bytes)", code="snapshot_too_large"
            )
        payload, name = await to_thread(self._read_export, raw)
        return await self._save(payload, (name or IMPORTED_NAME).strip()[:80] or IMPORTED_NAME)

    def _read_export(self, raw: bytes) -> tuple[dict, str]:
        document = parse_export(raw)
        payload = document.get("payload", document) if isinstance(document, dict) else document
        validate_payload(payload, self.limits)
        payload["history"] = payload.get("history", [])[-self.settings.history_len :]  # what a session keeps
        name = document.get("name") if isinstance(document, dict) else None
        return payload, name if isinstance(name, str) else ""

    async def list_snapshots(self, limit: int = 100, offset: int = 0) -> list[dict]:
        if not 1 <= limit <= 500:
            raise FieldError("limit", "limit must be 1 … 500", code="invalid", name="limit")
        if not 0 <= offset < 2**53:  # SQLite's OFFSET is a 64-bit integer; a bigger one would be a 500
            raise FieldError("offset", "offset must be 0 or more, below 2^53", code="invalid", name="offset")
        return await self._stored(self.snapshots.list, limit=limit, offset=offset)

    async def rename_snapshot(self, snapshot_id: str, name: str) -> dict:
        try:
            meta = await self._stored(self.snapshots.rename, snapshot_id, name)
        except FieldError:  # a FieldError is a ValueError too: the store's answer, not a bad name
            raise
        except ValueError as e:
            raise FieldError("name", str(e), code="snapshot_name") from None
        if meta is None:
            raise FieldError("snapshot_id", "no such snapshot", code="snapshot_unknown")
        return meta

    async def delete_snapshot(self, snapshot_id: str) -> None:
        if not await self._stored(self.snapshots.delete, snapshot_id):
            raise FieldError("snapshot_id", "no such snapshot", code="snapshot_unknown")

    def _check_write_allowance(self, spend: bool = False) -> None:
        """429 when this client address has used its snapshot writes for now (checked before
        the work, spent only by a write that reaches the store)."""
        client, limiter = client_address.get(), self.snapshot_writes
        if not (limiter.take(client) if spend else limiter.allows(client)):
            per_minute = self.settings.snapshot_writes_per_minute
            raise FieldError(
                "snapshot",
                f"too many snapshot saves and imports from your address: at most {per_minute} a minute "
                "(limit snapshot_writes_per_minute); try again in a minute",
                code="limit_snapshot_writes",
                max=per_minute,
            )

    async def _save(self, payload: dict, name: str) -> dict:
        self._check_write_allowance(spend=True)
        try:
            return await self._stored(self.snapshots.save, payload, name=name)
        except FieldError:  # a FieldError is a ValueError too: the store's answer, not a bad payload
            raise
        except ValueError as e:
            if "non-finite" in str(e):  # a diverged network: NaN/inf weights or losses
                raise FieldError(
                    "model",
                    "the network has diverged (NaN or infinite numbers); reset it or lower "
                    "the learning rate before saving",
                    code="model_not_finite",
                ) from None
            raise FieldError("name", str(e), code="snapshot_name") from None

    @staticmethod
    async def _stored(method, *args, **kwargs):
        """A snapshot-store call, off the event loop (JSON of big weights); storage errors
        become FieldErrors naming the limit or saying the store is unavailable."""
        try:
            return await to_thread(method, *args, **kwargs)
        except SnapshotError as e:
            text = str(e)
            if "max_snapshot_bytes" in text:
                raise FieldError("max_snapshot_bytes", text, code="snapshot_too_large") from None
            if "max_snapshots" in text:
                raise FieldError("max_snapshots", text, code="snapshot_store_full") from None
            log.error("snapshot store unavailable: %s", text)  # the details (path, SQLite's words) stay here
            raise FieldError(
                "snapshot",
                "the snapshot store cannot be used right now; try again later",
                code="snapshot_store_unavailable",
            ) from None
