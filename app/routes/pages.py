"""HTML: the playground page, the watch page, and the htmx endpoints behind the controls.

htmx controls post form fields here (with the control token in the Authorization header,
added by the page's JS); each endpoint turns the form into the same partial config the
JSON API takes, goes through the same store calls, and answers with the re-rendered
network partial when the shape changed (204 otherwise: the stream shows the rest).
"""
from __future__ import annotations

import json
from pathlib import Path
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, File, Request, UploadFile
from fastapi.responses import HTMLResponse, JSONResponse, Response
from fastapi.templating import Jinja2Templates

from app.config import (ConfigFields, FieldError, SessionConfig, Settings, fields_from_strings, get_settings,
                        resolve, to_query, validate_fields, validate_model)
from app.data import DATASETS
from app.data.features import FEATURES
from app.i18n import catalog, pick_language, translator
from app.layout import build_layout
from app.nn import HIDDEN_ACTIVATIONS, INITS, OPTIMIZERS, REGULARIZATIONS, SCHEDULES
from app.routes.api import (NearBody, PointBody, SessionId, check_room_for_point, controlled, get_store, regenerate,
                            upload_csv)
from app.sessions import SessionHandle, SessionStore

router = APIRouter(tags=["pages"], include_in_schema=False)
templates = Jinja2Templates(directory=Path(__file__).resolve().parents[2] / "templates")

LEARNING_RATES = [0.00001, 0.0001, 0.001, 0.003, 0.01, 0.03, 0.1, 0.3, 1, 3, 10]
REG_RATES = [0, 0.001, 0.003, 0.01, 0.03, 0.1, 0.3, 1, 3, 10]
SPEEDS = [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000]
BATCH_SIZES = [1, 2, 5, 10, 16, 32, 64, 128, 256]
PRESETS = {
    "default": {"dataset": "circle", "hidden": "4:tanh,2:tanh", "learning_rate": "0.03", "optimizer": "sgd",
                "features": "x1,x2", "batch_size": "10"},
    "seed": {"dataset": "digits", "hidden": "128:relu,64:relu", "optimizer": "adam", "learning_rate": "0.001",
             "batch_size": "32", "init": "he"},
    "spiral": {"dataset": "spiral", "hidden": "8:tanh,8:tanh,8:tanh,8:tanh,8:tanh,8:tanh", "learning_rate": "0.003",
               "optimizer": "adam", "batch_size": "10", "epochs_per_frame": "5", "noise": "0"},
}
PAGE_PARAMS = {"lang", "session", "present", "debug", "autoplay", "hide", "preset"}


def _json_for_script(data) -> str:
    # Inside <script type="application/json">, "</" could end the element early.
    return json.dumps(data, ensure_ascii=False).replace("</", "<\\/")


def request_language(request: Request) -> str:
    # htmx and fetch calls say the page's language in X-Lang; pages use ?lang= or Accept-Language.
    return pick_language(request.query_params.get("lang") or request.headers.get("x-lang"),
                         request.headers.get("accept-language"))


def control_choices(t, cfg: SessionConfig, settings: Settings) -> dict:
    """Options of every select on the page, always including the current value."""
    spec = DATASETS.get(cfg.dataset)
    batch = sorted(set(BATCH_SIZES) | {cfg.batch_size} - {settings.max_points})
    return {
        "learning_rate": sorted(set(LEARNING_RATES) | {cfg.learning_rate}),
        "lr_schedule": [(k, t(f"sched.{k}")) for k in SCHEDULES],
        "optimizer": [(o, t(f"opt.{o}")) for o in OPTIMIZERS],
        "regularization": [(r, t(f"reg.{r}")) for r in REGULARIZATIONS],
        "regularization_rate": sorted(set(REG_RATES) | {cfg.regularization_rate}),
        "init": [(k, t(f"init.{k}")) for k in INITS],
        "epochs_per_frame": [(s, f"{s}×") for s in sorted(set(SPEEDS) | {cfg.epochs_per_frame})],
        "dataset": list(DATASETS),
        "class_counts": list(spec.classes) if spec and len(spec.classes) > 1 else [],
        "batch_size": [(b, str(b)) for b in batch] + [(settings.max_points, t("data.full_batch"))],
    }


def page_context(request: Request, cfg: SessionConfig, settings: Settings, **extra) -> dict:
    lang = request_language(request)
    t = translator(lang)
    present = request.query_params.get("present") == "1"
    return {"request": request, "t": t, "lang": lang, "cfg": cfg, "choices": control_choices(t, cfg, settings),
            "limits": settings, "controls": True, "embed": False, "hide": set(), "autoplay": False,
            "present": present,
            "messages_json": _json_for_script(catalog(lang)), "page_title": t("app.title"),
            "body_class": "present" if present else "", "entry": "playground", **extra}


def network_context(cfg: SessionConfig, dims: int | None, structure: int, controls: bool = True) -> dict:
    """What partials/_network.html needs besides cfg, t, limits and controls."""
    return {"layout": build_layout(cfg, dims, all_features=controls), "structure": structure,
            "activations": HIDDEN_ACTIVATIONS, "presets": list(PRESETS)}


def error_response(request: Request, status: int, field: str, message: str):
    lang = pick_language(request.query_params.get("lang"), request.headers.get("accept-language"))
    ctx = {"request": request, "t": translator(lang), "lang": lang, "status": status, "field": field,
           "message": message, "messages_json": _json_for_script(catalog(lang)),
           "page_title": translator(lang)("page.error_title"), "body_class": "error", "entry": "page"}
    return templates.TemplateResponse(request, "error.html", ctx, status_code=status)


@router.get("/", response_class=HTMLResponse)
async def index(request: Request, store: SessionStore = Depends(get_store),
                settings: Settings = Depends(get_settings)):
    """The playground. The query pre-fills the config; ?session=<id> reopens a session."""
    params = dict(request.query_params)
    sid = params.get("session", "")
    handle = store.sessions.get(sid) if sid else None
    if handle is not None:
        status = await store.call(handle, "status")
        cfg, dims, structure = handle.config, status["dims"], status["structure"]
    else:
        sid = ""
        preset = PRESETS.get(params.get("preset", ""), {})
        fields = fields_from_strings({**preset, **{k: v for k, v in params.items() if k not in PAGE_PARAMS}},
                                     ignore_unknown=True)
        cfg, dims, structure = resolve(None, fields, settings), None, 0
    query = urlencode(to_query(cfg))
    ctx = page_context(request, cfg, settings, session_id=sid, query=query,
                       **network_context(cfg, dims, structure))
    return templates.TemplateResponse(request, "index.html", ctx)


# --- htmx endpoints ---------------------------------------------------------------------------
@router.post("/ui/sessions")
async def ui_create(request: Request, store: SessionStore = Depends(get_store),
                    settings: Settings = Depends(get_settings)):
    """Create a session from the page's query string (form-encoded, same names as the URL)."""
    form = await request.form()
    params = {k: str(v) for k, v in form.items()}
    preset = PRESETS.get(params.pop("preset", ""), {})
    cfg = resolve(None, fields_from_strings({**preset, **params}, ignore_unknown=True), settings)
    handle = await store.create(cfg)
    return JSONResponse({"id": handle.id, "control_token": handle.token, "config": cfg.model_dump(),
                         "query": urlencode(to_query(cfg))}, status_code=201)


@router.get("/ui/sessions/{sid}/network", response_class=HTMLResponse)
async def ui_network(sid: SessionId, request: Request, controls: bool = True,
                     store: SessionStore = Depends(get_store), settings: Settings = Depends(get_settings)):
    handle = store.get(sid)
    status = await store.call(handle, "status")
    # The captions follow: the output and loss ones change with the problem.
    captions = templates.get_template("partials/_captions.html").render(
        {"request": request, "t": translator(request_language(request)), "cfg": handle.config, "oob": False})
    return HTMLResponse(_render_network(request, handle, status, settings, controls) + captions)


def _render_network(request: Request, handle: SessionHandle, status: dict, settings: Settings,
                    controls: bool = True, oob: bool = False) -> str:
    ctx = {"request": request, "t": translator(request_language(request)), "limits": settings,
           "controls": controls, "cfg": handle.config, "oob": oob,
           **network_context(handle.config, status.get("dims"), status.get("structure", 0), controls)}
    return templates.get_template("partials/_network.html").render(ctx)


def _render_panels(request: Request, handle: SessionHandle, settings: Settings) -> str:
    """The top-bar settings, the data panel and the captions, as out-of-band swaps: after any
    change they show the session's real config (a dataset's class counts, a lowered learning
    rate, regression's loss instead of cross-entropy…)."""
    t = translator(request_language(request))
    ctx = {"request": request, "t": t, "cfg": handle.config, "limits": settings, "oob": True,
           "choices": control_choices(t, handle.config, settings)}
    return "".join(templates.get_template(f"partials/{name}.html").render(ctx) for name in ("_hyper", "_data_panel", "_captions"))


def controls_response(request: Request, handle: SessionHandle, settings: Settings, result: dict,
                      *, network: bool) -> HTMLResponse:
    """The answer to an htmx control: the network partial (when asked or reshaped) plus the panels."""
    body = _render_panels(request, handle, settings)
    if network:  # the request targets #network
        body = _render_network(request, handle, result, settings) + body
    elif result.get("rebuilt"):  # a config change reshaped it: swap it out of band
        body = _render_network(request, handle, result, settings, oob=True) + body
    trigger = {"mlp:config": {"changed": result.get("changed", []), "rebuilt": result.get("rebuilt", []),
                              "reset": bool(result.get("reset"))}}
    return HTMLResponse(body, headers={"HX-Trigger": json.dumps(trigger)})


async def _apply(request: Request, handle: SessionHandle, store: SessionStore, settings: Settings,
                 change: ConfigFields, *, always_render: bool = False):
    cfg = resolve(handle.config, change, settings)
    result = await store.configure(handle, cfg)
    return controls_response(request, handle, settings, result, network=always_render)


@router.post("/ui/sessions/{sid}/config")
async def ui_config(request: Request, handle: SessionHandle = Depends(controlled),
                    store: SessionStore = Depends(get_store), settings: Settings = Depends(get_settings)):
    form = await request.form()
    change = fields_from_strings({k: str(v) for k, v in form.items()}, ignore_unknown=False)
    return await _apply(request, handle, store, settings, change)


@router.post("/ui/sessions/{sid}/structure")
async def ui_structure(request: Request, handle: SessionHandle = Depends(controlled),
                       store: SessionStore = Depends(get_store), settings: Settings = Depends(get_settings)):
    """Structure buttons: add/remove a layer or a unit, set an activation, toggle a feature."""
    form = {k: str(v) for k, v in (await request.form()).items()}
    op = form.get("op", "")
    layers = [h.model_dump() for h in handle.config.hidden_layers]
    features = list(handle.config.features)
    layer = _int(form, "layer", len(layers) - 1) if op in ("add_unit", "remove_unit", "activation") else None
    if layer is not None and not 0 <= layer < len(layers):
        raise FieldError("layer", f"there is no hidden layer {layer}")
    if op == "add_layer":
        template = layers[-1] if layers else {"units": 4, "activation": "tanh"}
        layers.append({"units": min(template["units"], 8), "activation": template["activation"]})
    elif op == "remove_layer":
        if not layers:
            raise FieldError("hidden_layers", "there is no hidden layer to remove")
        layers.pop()
    elif op == "add_unit":
        layers[layer]["units"] += 1
    elif op == "remove_unit":
        layers[layer]["units"] -= 1
    elif op == "activation":
        layers[layer]["activation"] = form.get("activation", "")
    elif op == "toggle_feature":
        name = form.get("feature", "")
        if name not in FEATURES:
            raise FieldError("feature", f"unknown feature; choose one of {', '.join(FEATURES)}")
        if name in features:
            if len(features) == 1:
                raise FieldError("features", "keep at least one input feature", code="keep_one_feature")
            features.remove(name)
        else:
            features = [f for f in FEATURES if f in features or f == name]  # keep the canonical order
    else:
        raise FieldError("op", "unknown structure operation")
    change = validate_fields({"hidden_layers": layers, "features": features})
    return await _apply(request, handle, store, settings, change, always_render=True)


def _int(form: dict, key: str, default: int) -> int:
    try:
        return int(form.get(key, default))
    except ValueError:
        raise FieldError(key, "must be a whole number")


@router.post("/ui/sessions/{sid}/transport", status_code=204)
async def ui_transport(request: Request, handle: SessionHandle = Depends(controlled),
                       store: SessionStore = Depends(get_store)):
    """Play/pause toggle, step and reset from the page; the stream shows the outcome."""
    op = (await request.form()).get("op", "")
    if op == "toggle":
        op = "pause" if handle.status == "running" else "play"
    if op not in ("play", "pause", "step", "reset"):
        raise FieldError("op", "unknown transport operation")
    await store.call(handle, op)
    return Response(status_code=204)


@router.post("/ui/sessions/{sid}/regenerate")
async def ui_regenerate(request: Request, handle: SessionHandle = Depends(controlled),
                        store: SessionStore = Depends(get_store), settings: Settings = Depends(get_settings)):
    result = await regenerate(handle, store, settings)
    return controls_response(request, handle, settings, result, network=False)


@router.post("/ui/sessions/{sid}/recover")
async def ui_recover(request: Request, handle: SessionHandle = Depends(controlled),
                     store: SessionStore = Depends(get_store), settings: Settings = Depends(get_settings)):
    """After divergence: a learning rate ten times lower, then a reset."""
    lower = max(handle.config.learning_rate / 10, 1e-5)
    result = await store.configure(handle, resolve(handle.config, ConfigFields(learning_rate=lower), settings))
    await store.call(handle, "reset")
    return controls_response(request, handle, settings, result, network=False)


@router.post("/ui/sessions/{sid}/upload")
async def ui_upload(request: Request, file: UploadFile = File(), handle: SessionHandle = Depends(controlled),
                    store: SessionStore = Depends(get_store), settings: Settings = Depends(get_settings)):
    result = await upload_csv(file, handle, store, settings)
    return controls_response(request, handle, settings, result, network=True)


@router.post("/ui/sessions/{sid}/points")
async def ui_points(request: Request, handle: SessionHandle = Depends(controlled),
                    store: SessionStore = Depends(get_store), settings: Settings = Depends(get_settings)):
    """Clicks on the output plot: op=add (x1, x2, label) or op=remove (x1, x2)."""
    form = {k: str(v) for k, v in (await request.form()).items()}
    x = [_float(form, "x1"), _float(form, "x2")]
    if form.get("op") == "add":
        check_room_for_point(handle, settings)
        body = validate_model(PointBody, {"x": x, "label": _float(form, "label")})
        result = await store.call(handle, "points", add=body.x, label=body.label)
    elif form.get("op") == "remove":
        result = await store.call(handle, "points", remove=validate_model(NearBody, {"x": x}).x)
    else:
        raise FieldError("op", "op must be add or remove")
    return controls_response(request, handle, settings, result, network=False)


def _float(form: dict, key: str) -> float:
    try:
        return float(form[key])
    except (KeyError, ValueError):
        raise FieldError(key, "must be a number")
