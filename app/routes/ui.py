"""The htmx endpoints behind the page's controls (/ui/…): thin adapters over the control layer.

htmx posts form fields (with the control token in the Authorization header, added by the
page's JS); each endpoint turns the form into the control layer's typed input, and answers
with the panels rendered again, plus the network when its shape changed.
"""

from __future__ import annotations

import typing
from urllib.parse import urlencode

from fastapi import APIRouter, File, Request, UploadFile
from fastapi.responses import HTMLResponse, JSONResponse, Response

from app.control import NearBody, PointBody, RenameBody, SaveBody, Transport
from app.errors import FieldError
from app.i18n import translator
from app.protocol import STRUCTURE_OPS, StructureOp
from app.querycodec import fields_from_strings, to_query
from app.routes.deps import Actions, Admin, AppSettings, Controlled, SessionId, SnapshotId, Store
from app.routes.render import controls_response, render_captions, render_network, request_language, templates
from app.schema import validate_model

router = APIRouter(prefix="/ui", tags=["pages"], include_in_schema=False)
TRANSPORT_OPS: tuple[Transport, ...] = typing.get_args(Transport)


async def form_of(request: Request) -> dict[str, str]:
    return {k: str(v) for k, v in (await request.form()).items()}


def _int(form: dict, key: str) -> int | None:
    if key not in form:
        return None
    try:
        return int(form[key])
    except ValueError:
        raise FieldError(key, "must be a whole number") from None


def _float(form: dict, key: str) -> float:
    try:
        return float(form[key])
    except (KeyError, ValueError):
        raise FieldError(key, "must be a number") from None


@router.post("/sessions")
async def ui_create(request: Request, control: Actions):
    """Create a session from the page's query string (form-encoded, same names as the URL)."""
    record = await control.create_from_query(await form_of(request))
    return JSONResponse(
        {
            "id": record.id,
            "control_token": record.token,
            "config": record.config.model_dump(),
            "query": urlencode(to_query(record.config)),
        },
        status_code=201,
    )


@router.get("/sessions/{sid}/network", response_class=HTMLResponse)
async def ui_network(
    sid: SessionId, request: Request, store: Store, control: Actions, settings: AppSettings, controls: bool = True
):
    """The network drawing (and its captions) of any session: watchers redraw with it too."""
    record = store.get(sid)
    # Every watcher redraws with it after a change. The frame that announced the change can
    # arrive before the worker's reply has updated record.config: draw the reported config.
    status, cfg = await control.reported_status(record)
    return HTMLResponse(
        render_network(request, cfg, status, settings, controls) + render_captions(request, cfg, oob=False)
    )


@router.post("/sessions/{sid}/config")
async def ui_config(request: Request, record: Controlled, control: Actions, settings: AppSettings):
    change = fields_from_strings(await form_of(request), ignore_unknown=False)
    return controls_response(request, record, settings, await control.change(record, change), network=False)


@router.post("/sessions/{sid}/structure")
async def ui_structure(request: Request, record: Controlled, control: Actions, settings: AppSettings):
    """Structure buttons: add/remove a layer or a unit, set an activation, toggle a feature."""
    form = await form_of(request)
    op = next((name for name in STRUCTURE_OPS if name == form.get("op")), None)
    if op is None:
        raise FieldError("op", "unknown structure operation")
    edit = StructureOp(op, layer=_int(form, "layer"), activation=form.get("activation"), feature=form.get("feature"))
    result = await control.edit_structure(record, edit)
    return controls_response(request, record, settings, result, network=True)


@router.post("/sessions/{sid}/transport", status_code=204)
async def ui_transport(request: Request, record: Controlled, control: Actions):
    """Play/pause toggle, step and reset from the page; the stream shows the outcome."""
    given = (await form_of(request)).get("op")
    op = next((name for name in TRANSPORT_OPS if name == given), None)
    if op is None:
        raise FieldError("op", "unknown transport operation")
    await control.transport(record, op)
    return Response(status_code=204)


@router.post("/sessions/{sid}/regenerate")
async def ui_regenerate(request: Request, record: Controlled, control: Actions, settings: AppSettings):
    return controls_response(request, record, settings, await control.regenerate(record), network=False)


@router.post("/sessions/{sid}/recover")
async def ui_recover(request: Request, record: Controlled, control: Actions, settings: AppSettings):
    """After divergence: a learning rate ten times lower, then a reset."""
    return controls_response(request, record, settings, await control.recover(record), network=False)


@router.post("/sessions/{sid}/upload")
async def ui_upload(
    request: Request, record: Controlled, control: Actions, settings: AppSettings, file: UploadFile = File()
):
    result = await control.upload(record, await file.read(settings.max_upload_bytes + 1))
    return controls_response(request, record, settings, result, network=True)


@router.post("/sessions/{sid}/points")
async def ui_points(request: Request, record: Controlled, control: Actions, settings: AppSettings):
    """Clicks on the output plot: op=add (x1, x2, label) or op=remove (x1, x2)."""
    form = await form_of(request)
    x = [_float(form, "x1"), _float(form, "x2")]
    if form.get("op") == "add":
        result = await control.add_point(record, validate_model(PointBody, {"x": x, "label": _float(form, "label")}))
    elif form.get("op") == "remove":
        result = await control.remove_point(record, validate_model(NearBody, {"x": x}))
    else:
        raise FieldError("op", "op must be add or remove")
    return controls_response(request, record, settings, result, network=False)


# --- the "Saved networks" dialog ----------------------------------------------------------------
async def _snapshot_list(request: Request, control: Actions) -> HTMLResponse:
    rows = await control.list_snapshots(limit=100)
    html = templates.get_template("partials/_snapshots.html").render(
        {"request": request, "t": translator(request_language(request)), "snapshots": rows}
    )
    return HTMLResponse(html)


@router.get("/snapshots")
async def ui_list(request: Request, control: Actions, _: Admin):
    return await _snapshot_list(request, control)


@router.post("/sessions/{sid}/snapshots")
async def ui_save(request: Request, record: Controlled, control: Actions, _: Admin):
    body = validate_model(SaveBody, {"name": (await form_of(request)).get("name", "")})
    await control.save(record, body.name)
    return await _snapshot_list(request, control)


@router.patch("/snapshots/{snapshot_id}")
async def ui_rename(snapshot_id: SnapshotId, request: Request, control: Actions, _: Admin):
    body = validate_model(RenameBody, {"name": (await form_of(request)).get("name", "")})
    await control.rename_snapshot(snapshot_id, body.name)
    return await _snapshot_list(request, control)


@router.delete("/snapshots/{snapshot_id}")
async def ui_delete(snapshot_id: SnapshotId, request: Request, control: Actions, _: Admin):
    await control.delete_snapshot(snapshot_id)
    return await _snapshot_list(request, control)


@router.post("/snapshots/import")
async def ui_import(request: Request, control: Actions, settings: AppSettings, _: Admin, file: UploadFile = File()):
    await control.import_snapshot(await file.read(settings.max_snapshot_bytes + 1))
    return await _snapshot_list(request, control)
