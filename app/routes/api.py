"""The JSON API under /api (see shared/design/api-contract.md): sessions, control, model, data.

Reads need only the session id; anything that changes a session needs its control token
as `Authorization: Bearer <token>` (401 when missing, 403 when wrong). Each endpoint is a
thin adapter: it parses the body, calls the control layer, and shapes the answer.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, File, Request, Response, UploadFile
from pydantic import BaseModel, ConfigDict, Field, StrictInt

from app import protocol as cmd
from app.control import NearBody, PointBody, Transport
from app.errors import FieldError
from app.netaddr import share_base_url
from app.numbers import json_safe
from app.routes.deps import Actions, AppSettings, Controlled, SessionId, Store, Viewed, bearer_token
from app.schema import ConfigFields, CreateBody, SessionConfig
from app.store import SessionRecord

router = APIRouter(prefix="/api", tags=["sessions"])

ProbeCoordinate = Annotated[float, Field(allow_inf_nan=False, ge=-1e3, le=1e3)]


def status_body(record: SessionRecord, status: dict, config: SessionConfig | None = None) -> dict:
    """A session's status as the API answers it: id, status, counters, viewers and config
    (the record's copy unless the status came with its own)."""
    cfg = record.config if config is None else config
    return {"id": record.id, **status, "watchers": record.viewers, "config": cfg.model_dump()}


@router.post("/sessions", status_code=201)
async def create_session(request: Request, control: Actions, body: CreateBody | None = None):
    """Create a session. Every field is optional; `seed` is chosen at random when absent.
    With `snapshot`, the session starts from a saved network (same weights, same data)."""
    record = await control.create(body or CreateBody())
    return {
        "id": record.id,
        "control_token": record.token,
        "config": record.config.model_dump(),
        "watch_url": share_base_url(request.app.state.settings, request.url) + f"/s/{record.id}",
        "events_url": str(request.url_for("session_events", sid=record.id)),
        "status": record.status,
    }


@router.get("/load", tags=["lifecycle"])
async def read_load(store: Store):
    """Whether the server keeps up: `busy` when the median live stream gets less than 80 % of
    the frame rate it asked for (app/pace.py); `fps` that stream's frames a second. Answered
    from the server process, never from a worker."""
    return store.pace.report()


@router.get("/sessions/{sid}")
async def read_session(record: Viewed, control: Actions):
    """Answered from the status the session's worker reported last, without a round trip to it."""
    return status_body(record, *await control.reported_status(record))


@router.patch("/sessions/{sid}")
async def patch_session(change: ConfigFields, record: Controlled, control: Actions):
    """Change the config live: only the fields given change. Says what it rebuilt: `rebuilt`
    lists "data" and/or "network"."""
    return status_body(record, await control.change(record, change))


@router.delete("/sessions/{sid}", status_code=204)
async def delete_session(record: Controlled, control: Actions):
    await control.delete(record)
    return Response(status_code=204)


@router.post("/sessions/{sid}/release", status_code=204, tags=["lifecycle"])
async def release_session(sid: SessionId, request: Request, control: Actions):
    """The page holding this session went away (sent on `pagehide` with `fetch(…, {keepalive:
    true})` and the token): the session ends after RELEASE_GRACE_SECONDS once nobody watches it.
    A reload within the grace takes the release back (DELETE)."""
    control.release(sid, bearer_token(request))
    return Response(status_code=204)


@router.delete("/sessions/{sid}/release", status_code=204, tags=["lifecycle"])
async def keep_session(sid: SessionId, request: Request, control: Actions):
    """Take a release back: the page came back (a reload, a restored tab) within the grace."""
    control.release(sid, bearer_token(request), keep=True)
    return Response(status_code=204)


class HandoverBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    to: str = Field(min_length=1, max_length=64, description="the session the viewers move to")
    to_token: str = Field(min_length=1, max_length=256, description="its control token: you control both")


@router.post("/sessions/{sid}/handover")
async def hand_over(body: HandoverBody, request: Request, record: Controlled, control: Actions):
    """End this session and send its viewers to another one (the teacher opened a preset or a
    saved network): their streams get `closed` with `reason` "moved" and the `successor` id,
    and the old watch link leads to the new session from then on."""
    new = await control.hand_over(record, body.to, body.to_token)
    watch_url = share_base_url(request.app.state.settings, request.url) + f"/s/{new.id}"
    return {"id": record.id, "moved_to": new.id, "watch_url": watch_url}


def _transport(op: Transport, doc: str) -> None:
    async def endpoint(record: Controlled, control: Actions):
        return status_body(record, await control.transport(record, op))

    endpoint.__doc__ = doc
    router.add_api_route(f"/sessions/{{sid}}/{op}", endpoint, methods=["POST"], name=f"session_{op}")


_transport("play", "Train continuously until paused.")
_transport("pause", "Stop training; the state stays as it is.")
_transport("step", "Train exactly one epoch, then pause.")
_transport("reset", "New initial weights from the seed, same data, epoch 0, paused.")


@router.get("/sessions/{sid}/model")
async def read_model(record: Viewed, store: Store):
    """Weights (inputs×units), biases and activation of every layer; the last is the output layer."""
    # JSON encoded by the worker, passed through as bytes: returning the dict would let FastAPI's
    # jsonable_encoder walk every number on the event loop (40 ms for the seed figure's weights).
    return Response(await store.call(record, cmd.Model(record.id)), media_type="application/json")


@router.get("/sessions/{sid}/data")
async def read_data(record: Viewed, store: Store):
    """Raw points before feature expansion; `y` is a class index or a regression target."""
    return Response(await store.call(record, cmd.Data(record.id)), media_type="application/json")


@router.get("/sessions/{sid}/history")
async def read_history(record: Viewed, store: Store):
    """Loss history as [epoch, train, test] rows (older rows thinned to keep it bounded)."""
    return {"history": json_safe(await store.call(record, cmd.History(record.id)))}


class ProbeBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    x: list[ProbeCoordinate] = Field(min_length=1, max_length=64)
    snap: bool = Field(True, description="use the nearest data point (and its label) instead of x itself")
    label: int | None = Field(None, ge=0, le=9, description="true class of a free (snap=false) probe")


@router.put("/sessions/{sid}/probe")
async def set_probe(body: ProbeBody, record: Controlled, control: Actions):
    """Choose the probe input every neuron shows its value for: by default the data point
    nearest to x (so its true label is known); with snap=false, x itself (a drawn digit)."""
    return status_body(record, await control.set_probe(record, tuple(body.x), body.snap, body.label))


@router.get("/sessions/{sid}/timeline", tags=["timeline"])
async def read_timeline(record: Viewed, store: Store):
    """Epochs of the kept checkpoints, and the memory they use (bounded by TIMELINE_BYTES)."""
    return await store.call(record, cmd.Timeline(record.id))


class EpochBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    epoch: StrictInt | None = Field(ge=0, description="a checkpoint's epoch; null returns to the live state")


@router.post("/sessions/{sid}/timeline/view", tags=["timeline"])
async def view_checkpoint(body: EpochBody, record: Controlled, control: Actions):
    """Show a checkpoint in the frames (training pauses); the session itself is not changed."""
    return status_body(record, await control.view_checkpoint(record, body.epoch))


@router.post("/sessions/{sid}/timeline/resume", tags=["timeline"])
async def resume_checkpoint(body: EpochBody, record: Controlled, control: Actions):
    """Go back to a checkpoint and continue from there: the same weights, optimizer state and
    minibatch order as the uninterrupted run had at that epoch. Epoch 0 is a rewind."""
    if body.epoch is None:
        raise FieldError("epoch", "give the epoch to resume from", code="invalid", name="epoch")
    return status_body(record, await control.resume(record, body.epoch))


class ParamBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    layer: StrictInt = Field(ge=0, description="0 = first weight layer (inputs → first hidden layer)")
    i: StrictInt | None = Field(None, ge=0, description="input index; omit to set the bias of unit j")
    j: StrictInt = Field(ge=0, description="unit index in the layer")
    value: float = Field(allow_inf_nan=False, ge=-1e3, le=1e3)


@router.post("/sessions/{sid}/params")
async def set_param(body: ParamBody, record: Controlled, control: Actions):
    """Edit one weight W[layer][i][j] (or bias b[layer][j]) of the live network."""
    return status_body(record, await control.set_param(record, body.layer, body.i, body.j, body.value))


@router.post("/sessions/{sid}/regenerate")
async def regenerate(record: Controlled, control: Actions):
    """New data from a new data seed; the network stays as it is."""
    return status_body(record, await control.regenerate(record))


@router.post("/sessions/{sid}/points")
async def add_point(body: PointBody, record: Controlled, control: Actions):
    """Add a training point; the data becomes "custom" (your data)."""
    return status_body(record, await control.add_point(record, body))


@router.post("/sessions/{sid}/points/remove")
async def remove_point(body: NearBody, record: Controlled, control: Actions):
    """Remove the data point nearest to x."""
    return status_body(record, await control.remove_point(record, body))


@router.post("/sessions/{sid}/upload")
async def upload_csv(
    record: Controlled,
    control: Actions,
    settings: AppSettings,
    file: UploadFile = File(description="CSV: x1,x2,label or x1,x2,target"),
):
    """Replace the data with a CSV upload. A bad file gets 422 naming the line."""
    return status_body(record, await control.upload(record, await file.read(settings.max_upload_bytes + 1)))


@router.get("/sessions/{sid}/export/model.py", tags=["export"])
async def export_model(record: Viewed, control: Actions):
    """The trained network as a standalone Python file that needs only NumPy."""
    return Response(
        await control.export_model(record),
        media_type="text/x-python; charset=utf-8",
        headers={"Content-Disposition": 'attachment; filename="mlp_model.py"'},
    )


@router.get("/sessions/{sid}/export/data.csv", tags=["export"])
async def export_data(record: Viewed, control: Actions):
    """The data as CSV: x1,x2 (or p0…p63), label or target, and split (train/test)."""
    return Response(
        await control.export_data(record),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": 'attachment; filename="mlp_data.csv"'},
    )
