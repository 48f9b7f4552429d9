"""HTML rendering shared by the page routers: the Jinja environment, a page's context,
the network partial and the control panels (rendered again after every htmx control)."""

from __future__ import annotations

import json
from pathlib import Path

from fastapi import Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates
from jinja2 import Undefined

from app.data import DATASETS
from app.i18n import catalog, pick_language, translator
from app.layout import build_layout
from app.nn import HIDDEN_ACTIVATIONS, INITS, OPTIMIZERS, REGULARIZATIONS, SCHEDULES
from app.page_constants import page_constants
from app.presets import PRESETS
from app.schema import SessionConfig, field_bounds
from app.settings import Settings
from app.store import SessionRecord

templates = Jinja2Templates(directory=Path(__file__).resolve().parents[2] / "templates")

LEARNING_RATES = [0.00001, 0.0001, 0.001, 0.003, 0.01, 0.03, 0.1, 0.3, 1, 3, 10]
REG_RATES = [0, 0.001, 0.003, 0.01, 0.03, 0.1, 0.3, 1, 3, 10]
SPEEDS = [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000]
BATCH_SIZES = [1, 2, 5, 10, 16, 32, 64, 128, 256]


def json_for_script(data) -> str:
    """JSON to place inside <script type="application/json">, where "</" could end the element early."""
    return json.dumps(data, ensure_ascii=False).replace("</", "<\\/")


def _constants_json(settings=None) -> str:
    return json_for_script(page_constants(None if isinstance(settings, Undefined) else settings))


templates.env.globals["page_constants_json"] = _constants_json
# Every range the schema declares, for sliders: a new one needs only its template line.
templates.env.globals["bounds"] = {name: b for name in SessionConfig.model_fields if (b := field_bounds(name))}


def request_language(request: Request) -> str:
    # htmx and fetch calls say the page's language in X-Lang; pages use ?lang= or Accept-Language.
    return pick_language(
        request.query_params.get("lang") or request.headers.get("x-lang"), request.headers.get("accept-language")
    )


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
    return {
        "request": request,
        "t": t,
        "lang": lang,
        "cfg": cfg,
        "choices": control_choices(t, cfg, settings),
        "limits": settings,
        "controls": True,
        "embed": False,
        "hide": set(),
        "autoplay": False,
        "present": present,
        "messages_json": json_for_script(catalog(lang)),
        "page_title": t("app.title"),
        "body_class": "present" if present else "",
        "entry": "playground",
        **extra,
    }


def network_context(cfg: SessionConfig, dims: int | None, shape_version: int, controls: bool = True) -> dict:
    """What partials/_network.html needs besides cfg, t, limits and controls."""
    return {
        "layout": build_layout(cfg, dims, all_features=controls),
        "shape_version": shape_version,
        "activations": HIDDEN_ACTIVATIONS,
        "presets": list(PRESETS),
    }


def error_response(request: Request, status: int, field: str, message: str):
    lang = pick_language(request.query_params.get("lang"), request.headers.get("accept-language"))
    ctx = {
        "request": request,
        "t": translator(lang),
        "lang": lang,
        "status": status,
        "field": field,
        "message": message,
        "messages_json": json_for_script(catalog(lang)),
        "page_title": translator(lang)("page.error_title"),
        "body_class": "error",
        "entry": "page",
    }
    return templates.TemplateResponse(request, "error.html", ctx, status_code=status)


def render_network(
    request: Request, cfg: SessionConfig, status: dict, settings: Settings, controls: bool = True, oob: bool = False
) -> str:
    """The drawing of `cfg`, labelled with the status's shape_version. Both must come from
    one report (a reply, or `Control.reported_status`): a drawing of the old network labelled
    with the new version would be given frames of another shape."""
    ctx = {
        "request": request,
        "t": translator(request_language(request)),
        "limits": settings,
        "controls": controls,
        "cfg": cfg,
        "oob": oob,
        **network_context(cfg, status.get("dims"), status.get("shape_version", 0), controls),
    }
    return templates.get_template("partials/_network.html").render(ctx)


def render_captions(request: Request, cfg: SessionConfig, *, oob: bool) -> str:
    # The captions follow the problem: the output and loss ones differ for regression.
    return templates.get_template("partials/_captions.html").render(
        {"request": request, "t": translator(request_language(request)), "cfg": cfg, "oob": oob}
    )


def render_panels(request: Request, record: SessionRecord, settings: Settings) -> str:
    """The top-bar settings, the data panel and the captions, as out-of-band swaps: after any
    change they show the session's real config (a dataset's class counts, a lowered learning
    rate, regression's loss instead of cross-entropy…)."""
    t = translator(request_language(request))
    ctx = {
        "request": request,
        "t": t,
        "cfg": record.config,
        "limits": settings,
        "oob": True,
        "choices": control_choices(t, record.config, settings),
    }
    panels = "".join(templates.get_template(f"partials/{name}.html").render(ctx) for name in ("_hyper", "_data_panel"))
    return panels + render_captions(request, record.config, oob=True)


def controls_response(
    request: Request, record: SessionRecord, settings: Settings, result: dict, *, network: bool
) -> HTMLResponse:
    """The answer to an htmx control: the network partial (when asked or reshaped) plus the panels."""
    body = render_panels(request, record, settings)
    if network:  # the request targets #network
        body = render_network(request, record.config, result, settings) + body
    elif result.get("rebuilt"):  # a config change reshaped it: swap it out of band
        body = render_network(request, record.config, result, settings, oob=True) + body
    trigger = {
        "mlp:config": {
            "changed": result.get("changed", []),
            "rebuilt": result.get("rebuilt", []),
            "reset": bool(result.get("reset")),
            "version": result.get("config_version"),  # the config the panels in this answer show
        }
    }
    return HTMLResponse(body, headers={"HX-Trigger": json.dumps(trigger)})
