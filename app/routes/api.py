"""The JSON API under /api (see shared/design/api-contract.md): sessions, control, model, data.

Reads need only the session id; anything that changes a session needs its control token
as `Authorization: Bearer <token>` (401 when missing, 403 when wrong).
"""
from __future__ import annotations

import secrets
from typing import Annotated

from fastapi import APIRouter, Depends, File, Path, Request, Response, UploadFile
from pydantic import BaseModel, ConfigDict, Field, StrictInt

from fastapi.concurrency import run_in_threadpool

from app.config import ConfigFields, CreateBody, FieldError, Settings, check_limits, get_settings, resolve
from app.data import CsvError, parse_csv
from app.export import data_csv, model_python
from app.numbers import json_safe
from app.sessions import SessionHandle, SessionStore
from app.training import validate_payload

router = APIRouter(prefix="/api", tags=["sessions"])

SessionId = Annotated[str, Path(min_length=1, max_length=64, description="the session id")]


def get_store(request: Request) -> SessionStore:
    return request.app.state.store


def bearer_token(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


async def controlled(sid: SessionId, request: Request, store: SessionStore = Depends(get_store)) -> SessionHandle:
    """The session, if the request carries its control token."""
    return store.authorize(sid, bearer_token(request))


async def viewed(sid: SessionId, store: SessionStore = Depends(get_store)) -> SessionHandle:
    return store.get(sid)


def status_body(handle: SessionHandle, status: dict) -> dict:
    body = {"id": handle.id, **status, "watchers": len(handle.watchers)}
    body["config"] = handle.config.model_dump()
    return body


@router.post("/sessions", status_code=201)
async def create_session(request: Request, body: CreateBody | None = None,
                         store: SessionStore = Depends(get_store),
                         settings: Settings = Depends(get_settings)):
    """Create a session. Every field is optional; `seed` is chosen at random when absent."""
    body = body or CreateBody()
    if body.snapshot is not None:
        handle = await session_from_snapshot(request, body, store, settings)
        cfg = handle.config
    else:
        cfg = resolve(None, body, settings)
        handle = await store.create(cfg)
    return {"id": handle.id, "control_token": handle.token, "config": cfg.model_dump(),
            "watch_url": str(request.url_for("watch_page", sid=handle.id)),
            "events_url": str(request.url_for("session_events", sid=handle.id)), "status": handle.status}


async def session_from_snapshot(request: Request, body: CreateBody, store: SessionStore,
                                settings: Settings) -> SessionHandle:
    """A new session with a snapshot's config, data and weights."""
    if body.model_dump(exclude_none=True, exclude={"snapshot"}):
        raise FieldError("snapshot", "give either a snapshot or config fields, not both", code="snapshot_mixed")
    found = await run_in_threadpool(request.app.state.snapshots.get, body.snapshot)
    if found is None:
        raise FieldError("snapshot", "no such snapshot", 404, code="snapshot_unknown")
    payload = found["payload"]
    cfg = validate_payload(payload, lambda c: check_limits(c, settings))
    return await store.create(cfg, custom=payload.get("custom") if cfg.dataset == "custom" else None, state=payload)


@router.get("/sessions/{sid}")
async def read_session(handle: SessionHandle = Depends(viewed), store: SessionStore = Depends(get_store)):
    return status_body(handle, await store.call(handle, "status"))


@router.patch("/sessions/{sid}")
async def patch_session(change: ConfigFields, handle: SessionHandle = Depends(controlled),
                        store: SessionStore = Depends(get_store), settings: Settings = Depends(get_settings)):
    """Change the config live. Says what it rebuilt: `rebuilt` lists "data" and/or "network"."""
    cfg = resolve(handle.config, change, settings)
    return status_body(handle, await store.configure(handle, cfg))


@router.delete("/sessions/{sid}", status_code=204)
async def delete_session(handle: SessionHandle = Depends(controlled), store: SessionStore = Depends(get_store)):
    await store.delete(handle)
    return Response(status_code=204)


class HandoverBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    to: str = Field(min_length=1, max_length=64, description="the session the viewers move to")
    to_token: str = Field(min_length=1, max_length=256, description="its control token: you control both")


@router.post("/sessions/{sid}/handover")
async def hand_over(body: HandoverBody, request: Request, handle: SessionHandle = Depends(controlled),
                    store: SessionStore = Depends(get_store)):
    """End this session and send its viewers to another one (the teacher opened a preset or a
    saved network): their streams get `closed` with `reason` "moved" and the `successor` id,
    and the old watch link leads to the new session from then on."""
    try:
        new = store.authorize(body.to, body.to_token)
    except FieldError as e:  # name the body field, not the path's session
        raise FieldError("to", e.message, e.status, code=e.code, **e.params)
    await store.hand_over(handle, new)
    return {"id": handle.id, "moved_to": new.id,
            "watch_url": str(request.url_for("watch_page", sid=new.id))}


def _control(op: str, doc: str):
    async def endpoint(handle: SessionHandle = Depends(controlled), store: SessionStore = Depends(get_store)):
        return status_body(handle, await store.call(handle, op))

    endpoint.__doc__ = doc
    router.add_api_route(f"/sessions/{{sid}}/{op}", endpoint, methods=["POST"], name=f"session_{op}")


_control("play", "Train continuously until paused.")
_control("pause", "Stop training; the state stays as it is.")
_control("step", "Train exactly one epoch, then pause.")
_control("reset", "New initial weights from the seed, same data, epoch 0, paused.")


@router.get("/sessions/{sid}/model")
async def read_model(handle: SessionHandle = Depends(viewed), store: SessionStore = Depends(get_store)):
    """Weights (inputs×units), biases and activation of every layer; the last is the output layer."""
    # JSON encoded by the worker, passed through as bytes: returning the dict would let FastAPI's
    # jsonable_encoder walk every number on the event loop (40 ms for the seed figure's weights,
    # 240 ms for the digits data), stalling every stream and request meanwhile.
    return Response(await store.call(handle, "model", as_json=True), media_type="application/json")


@router.get("/sessions/{sid}/data")
async def read_data(handle: SessionHandle = Depends(viewed), store: SessionStore = Depends(get_store)):
    """Raw points before feature expansion; `y` is a class index or a regression target."""
    return Response(await store.call(handle, "data", as_json=True), media_type="application/json")


@router.get("/sessions/{sid}/history")
async def read_history(handle: SessionHandle = Depends(viewed), store: SessionStore = Depends(get_store)):
    """Loss history as [epoch, train, test] rows (older rows thinned to keep it bounded)."""
    return {"history": json_safe(await store.call(handle, "history"))}


class ProbeBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    x: list[Annotated[float, Field(allow_inf_nan=False, ge=-1e3, le=1e3)]] = Field(min_length=1, max_length=64)
    snap: bool = Field(True, description="use the nearest data point (and its label) instead of x itself")
    label: int | None = Field(None, ge=0, le=9, description="true class of a free (snap=false) probe")


@router.put("/sessions/{sid}/probe")
async def set_probe(body: ProbeBody, handle: SessionHandle = Depends(controlled),
                    store: SessionStore = Depends(get_store)):
    """Choose the probe input every neuron shows its value for: by default the data point
    nearest to x (so its true label is known); with snap=false, x itself (a drawn digit)."""
    return status_body(handle, await store.call(handle, "probe", x=body.x, snap=body.snap, label=body.label))


@router.get("/sessions/{sid}/timeline", tags=["timeline"])
async def read_timeline(handle: SessionHandle = Depends(viewed), store: SessionStore = Depends(get_store)):
    """Epochs of the kept checkpoints, and the memory they use (bounded by TIMELINE_BYTES)."""
    return await store.call(handle, "timeline")


class EpochBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    epoch: StrictInt | None = Field(ge=0, description="a checkpoint's epoch; null returns to the live state")


@router.post("/sessions/{sid}/timeline/view", tags=["timeline"])
async def view_checkpoint(body: EpochBody, handle: SessionHandle = Depends(controlled),
                          store: SessionStore = Depends(get_store)):
    """Show a checkpoint in the frames (training pauses); the session itself is not changed."""
    return status_body(handle, await store.call(handle, "view", epoch=body.epoch))


@router.post("/sessions/{sid}/timeline/resume", tags=["timeline"])
async def resume_checkpoint(body: EpochBody, handle: SessionHandle = Depends(controlled),
                            store: SessionStore = Depends(get_store)):
    """Go back to a checkpoint and continue from there: the same weights, optimizer state and
    minibatch order as the uninterrupted run had at that epoch. Epoch 0 is a rewind."""
    if body.epoch is None:
        raise FieldError("epoch", "give the epoch to resume from", code="invalid", name="epoch")
    return status_body(handle, await store.call(handle, "resume", epoch=body.epoch))


class ParamBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    layer: StrictInt = Field(ge=0, description="0 = first weight layer (inputs → first hidden layer)")
    i: StrictInt | None = Field(None, ge=0, description="input index; omit to set the bias of unit j")
    j: StrictInt = Field(ge=0, description="unit index in the layer")
    value: float = Field(allow_inf_nan=False, ge=-1e3, le=1e3)


@router.post("/sessions/{sid}/params")
async def set_param(body: ParamBody, handle: SessionHandle = Depends(controlled),
                    store: SessionStore = Depends(get_store)):
    """Edit one weight W[layer][i][j] (or bias b[layer][j]) of the live network."""
    return status_body(handle, await store.call(handle, "set_param", layer=body.layer, i=body.i, j=body.j,
                                                value=body.value))


@router.post("/sessions/{sid}/regenerate")
async def regenerate(handle: SessionHandle = Depends(controlled), store: SessionStore = Depends(get_store),
                     settings: Settings = Depends(get_settings)):
    """New data from a new data seed; the network stays as it is."""
    if handle.config.dataset == "custom":
        raise FieldError("dataset", "uploaded or edited data cannot be regenerated; choose a dataset first", 409,
                         code="custom_no_regenerate")
    cfg = resolve(handle.config, ConfigFields(data_seed=secrets.randbelow(2**31)), settings)
    return status_body(handle, await store.configure(handle, cfg))


class PointBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    x: list[Annotated[float, Field(allow_inf_nan=False, ge=-6.0, le=6.0)]] = Field(min_length=2, max_length=2)
    label: float = Field(0, allow_inf_nan=False, description="class index, or target in [−1, 1] for regression")


@router.post("/sessions/{sid}/points")
async def add_point(body: PointBody, handle: SessionHandle = Depends(controlled),
                    store: SessionStore = Depends(get_store), settings: Settings = Depends(get_settings)):
    """Add a training point; the data becomes "custom" (your data)."""
    check_room_for_point(handle, settings)
    return status_body(handle, await store.call(handle, "points", add=body.x, label=body.label))


def check_room_for_point(handle: SessionHandle, settings: Settings) -> None:
    """One more point must stay within MAX_POINTS, or every later change would be refused."""
    if handle.config.n_points >= settings.max_points:
        raise FieldError("n_points", f"at most {settings.max_points} points (limit max_points)",
                         code="limit_points", max=settings.max_points)


class NearBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    x: list[Annotated[float, Field(allow_inf_nan=False)]] = Field(min_length=2, max_length=2)


@router.post("/sessions/{sid}/points/remove")
async def remove_point(body: NearBody, handle: SessionHandle = Depends(controlled),
                       store: SessionStore = Depends(get_store)):
    """Remove the data point nearest to x."""
    return status_body(handle, await store.call(handle, "points", remove=body.x))


@router.post("/sessions/{sid}/upload")
async def upload_csv(file: UploadFile = File(description="CSV: x1,x2,label or x1,x2,target"),
                     handle: SessionHandle = Depends(controlled), store: SessionStore = Depends(get_store),
                     settings: Settings = Depends(get_settings)):
    """Replace the data with a CSV upload. A bad file gets 422 naming the line."""
    raw = await file.read(settings.max_upload_bytes + 1)
    try:
        ds = parse_csv(raw, max_bytes=settings.max_upload_bytes, max_rows=settings.max_upload_rows)
    except CsvError as e:
        raise FieldError("file" if e.line is None else f"file.line.{e.line}", str(e), code=f"csv_{e.code}", **e.params)
    result = await store.call(handle, "upload", x=ds.X.tolist(), y=ds.y.tolist(), problem=ds.problem,
                              classes=ds.classes)
    return status_body(handle, result)


@router.get("/sessions/{sid}/export/model.py", tags=["export"])
async def export_model(handle: SessionHandle = Depends(viewed), store: SessionStore = Depends(get_store)):
    """The trained network as a standalone Python file that needs only NumPy."""
    model, status = await store.call(handle, "model"), await store.call(handle, "status")
    try:
        source = model_python(model, features=handle.config.features if status["dims"] == 2 else None,
                              problem=handle.config.problem, title=f"MLP Playground model, epoch {status['epoch']}")
    except ValueError as e:  # a diverged network has no finite weights to export
        raise FieldError("model", str(e), 409, code="model_not_finite")
    return Response(source, media_type="text/x-python; charset=utf-8",
                    headers={"Content-Disposition": 'attachment; filename="mlp_model.py"'})


@router.get("/sessions/{sid}/export/data.csv", tags=["export"])
async def export_data(handle: SessionHandle = Depends(viewed), store: SessionStore = Depends(get_store)):
    """The data as CSV: x1,x2 (or p0…p63), label or target, and split (train/test)."""
    text = data_csv(await store.call(handle, "data"), problem=handle.config.problem)
    return Response(text, media_type="text/csv; charset=utf-8",
                    headers={"Content-Disposition": 'attachment; filename="mlp_data.csv"'})
