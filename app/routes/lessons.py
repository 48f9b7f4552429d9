"""Lessons: GET /api/lessons, /api/lessons/{id}, a step's exercise status for a session
(GET /api/sessions/{id}/lesson), the step a teacher's page shows (PUT, and /ui for the page),
the /learn/{lesson}/{step} pages, and the `lesson` stream event's payload (lesson_update).

Where goals are evaluated: here, in the server process, from what it already has: a status
reply for a request, the newest frame for the stream. The worker is asked for the model or
the data only by a goal that needs them (one neuron's line), and the data once per shape.
"""

from __future__ import annotations

import json
import logging
import time
from typing import Annotated, Any

from fastapi import APIRouter, FastAPI, Query, Request
from fastapi.responses import HTMLResponse, Response
from pydantic import BaseModel, ConfigDict, Field

from app import protocol as cmd
from app.errors import FieldError
from app.i18n import translator
from app.lessons import Board, Goal, Lesson, Step, evaluate, highlight_selector, lessons
from app.lessons.sources import frame_state, status_state
from app.routes.deps import Actions, AppSettings, Controlled, Store, Viewed
from app.routes.pages import playground_context
from app.routes.render import error_response, request_language, templates
from app.schema import SessionConfig
from app.store import SessionRecord, SessionStore

router = APIRouter(tags=["lessons"])
log = logging.getLogger("mlp")
LESSONS = lessons()  # loaded and checked at start-up: a bad lesson file stops the server, naming it
NOT_FOUND = 404


def quantity_labels(t) -> dict[str, str]:
    """What the page calls each quantity a goal checks, in the reader's language."""
    return {
        "test_accuracy": t("lesson.q.test_accuracy"),
        "train_accuracy": t("lesson.q.train_accuracy"),
        "test_loss": t("lesson.q.test_loss"),
        "train_loss": t("lesson.q.train_loss"),
        "epoch": t("lesson.q.epoch"),
        "status": t("lesson.q.status"),
        "features": t("lesson.q.features"),
        "dataset": t("lesson.q.dataset"),
        "classes": t("lesson.q.classes"),
        "noise": t("lesson.q.noise"),
        "learning_rate": t("lesson.q.learning_rate"),
        "optimizer": t("lesson.q.optimizer"),
        "hidden": t("lesson.q.hidden"),
        "hidden_layers": t("lesson.q.hidden_layers"),
        "max_units": t("lesson.q.max_units"),
        "hidden_units": t("lesson.q.hidden_units"),
        "hidden_activations": t("lesson.q.hidden_activations"),
        "diverged_before": t("lesson.q.diverged_before"),
        "answer_gap": t("lesson.q.answer_gap"),
        "neuron_accuracy": t("lesson.q.neuron_accuracy"),
    }


def board_of(app: FastAPI) -> Board:
    """The server's memory of sessions' lessons (app/lessons/board.py), made on first use."""
    board = getattr(app.state, "lesson_board", None)
    if board is None:
        board = app.state.lesson_board = Board()
    return board


def find_step(lesson_id: str, step_id: str | None) -> tuple[Lesson, Step | None]:
    lesson = LESSONS.get(lesson_id)
    if lesson is None:
        known = ", ".join(LESSONS)
        raise FieldError(
            "lesson", f"no lesson {lesson_id!r}; there are {known}", code="lesson_unknown", lesson=lesson_id
        )
    if step_id is None:
        return lesson, None
    step = lesson.step(step_id)
    if step is None:
        steps = ", ".join(s.id for s in lesson.steps)
        message = f"lesson {lesson_id!r} has no step {step_id!r}; it has {steps}"
        raise FieldError("step", message, code="lesson_step_unknown", step=step_id)
    return lesson, step


def _goal_json(goal: Goal | None, labels: dict[str, str]) -> dict | None:
    if goal is None:
        return None
    checks = [
        {"quantity": c.quantity, "label": labels[c.quantity], "op": c.op, "target": c.target, "params": c.params}
        for c in goal.checks
    ]
    return {"answer": goal.answer, "checks": checks}


def step_json(step: Step, lang: str, labels: dict[str, str]) -> dict:
    return {
        "id": step.id,
        "title": step.title(lang),
        "text": step.text(lang),
        "hint": step.hint(lang) if step.hint else None,
        "done": step.done(lang) if step.done else None,
        "setup": step.setup,
        "fields": step.fields,
        "highlight": [{"target": h, "selector": highlight_selector(h)} for h in step.highlight],
        "goal": _goal_json(step.goal, labels),
    }


def lesson_summary(lesson: Lesson, lang: str) -> dict:
    return {
        "id": lesson.id,
        "title": lesson.title(lang),
        "summary": lesson.summary(lang),
        "steps": [{"id": s.id, "title": s.title(lang), "exercise": s.goal is not None} for s in lesson.steps],
    }


Lang = Annotated[str | None, Query(pattern="^(en|ja)$", description="en or ja; default from Accept-Language")]


@router.get("/api/lessons")
async def list_lessons(request: Request, lang: Lang = None):
    """Every lesson: its title, summary and steps, in the reader's language."""
    code = request_language(request)
    return {"lang": code, "lessons": [lesson_summary(lesson, code) for lesson in LESSONS.values()]}


@router.get("/api/lessons/{lesson_id}")
async def read_lesson(lesson_id: str, request: Request, lang: Lang = None):
    """A lesson with every step: text, hint, what the goal says when met, the setup (a share
    link's query, and the complete config values it stands for), highlights and the goal."""
    lesson, _ = find_step(lesson_id, None)  # 404 naming the lesson
    code = request_language(request)
    labels = quantity_labels(translator(code))
    return {**lesson_summary(lesson, code), "lang": code, "steps": [step_json(s, code, labels) for s in lesson.steps]}


def _points_apply(cfg: SessionConfig) -> bool:
    """Whether a goal on the points (one neuron's line) can apply: two classes on the raw
    inputs x1, x2. Otherwise nothing is fetched from the worker for it."""
    return cfg.problem == "classification" and cfg.classes == 2 and list(cfg.features) == ["x1", "x2"]


async def _points(app: FastAPI, store: SessionStore, record: SessionRecord, shape_version: int) -> dict:
    """GET …/data, fetched once per shape (the points change only with it) and kept on the board."""
    entry = board_of(app).of(record.id)
    if entry.data is None or entry.data[0] != shape_version:
        entry.data = (shape_version, await store.call(record, cmd.Data(record.id, as_json=False)))
    return entry.data[1]


async def _needed(
    app: FastAPI, store: SessionStore, record: SessionRecord, cfg: SessionConfig, goal: Goal, status: dict
) -> dict[str, Any]:
    needs = goal.needs
    got: dict[str, Any] = {}
    if not needs or not _points_apply(cfg):
        return got
    if "model" in needs:
        got["model"] = await store.call(record, cmd.Model(record.id, as_json=False))
    if "data" in needs:
        got["data"] = await _points(app, store, record, status.get("shape_version", -1))
    return got


async def step_progress(
    app: FastAPI,
    store: SessionStore,
    record: SessionRecord,
    status: dict,
    cfg: SessionConfig,
    step: Step,
    answer: float | None,
) -> dict | None:
    """The step's progress on a session now (None for a step without an exercise), judged on
    the config reported with `status`."""
    seen = board_of(app).observe(record.id, status.get("status"))
    if step.goal is None:
        return None
    extra = await _needed(app, store, record, cfg, step.goal, status)
    state = status_state(status, cfg.model_dump(), seen=seen, answer=answer, **extra)
    return evaluate(step.goal, state).as_dict()


@router.get("/api/sessions/{sid}/lesson")
async def session_lesson(
    record: Viewed,
    request: Request,
    control: Actions,
    store: Store,
    lesson: Annotated[
        str | None, Query(max_length=40, description="a lesson id; default: the step the session's page shows")
    ] = None,
    step: Annotated[str | None, Query(max_length=40, description="a step id of that lesson")] = None,
    answer: Annotated[
        float | None, Query(allow_inf_nan=False, description="the learner's number, for a goal that asks one")
    ] = None,
):
    """A step's exercise status for this session: `met`, and each check with its `value`.
    Without `lesson`, the step the session's controlling page shows (what watchers follow)."""
    entry = board_of(request.app).get(record.id)
    if lesson is None:
        if step is not None:
            raise FieldError("lesson", "give the lesson of that step", code="invalid", name="lesson")
        lesson, step = (entry.lesson, entry.step) if entry else (None, None)
        if lesson is None:
            return {"lesson": None, "step": None, "progress": None}
    if step is None:
        raise FieldError("step", "give the step", code="invalid", name="step")
    _, found = find_step(lesson, step)
    assert found is not None
    status, cfg = await control.reported_status(record)  # a learner's page asks every second
    progress = await step_progress(request.app, store, record, status, cfg, found, answer)
    return {"lesson": lesson, "step": step, "progress": progress}


class StepBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    lesson: str | None = Field(None, max_length=40, description="null: no lesson shown")
    step: str | None = Field(None, max_length=40)


async def _show_step(request: Request, record: SessionRecord, lesson: str | None, step: str | None):
    if lesson is not None:
        find_step(lesson, step or "")  # 404 naming the lesson or the step
    board = board_of(request.app)
    board.keep_only(request.app.state.store.sessions)  # ended sessions' lessons are forgotten here
    entry = board.set_step(record.id, lesson, step if lesson else None)
    record.publish(None)  # wake the session's streams: watchers get the new step at once
    return {"lesson": entry.lesson, "step": entry.step}


@router.put("/api/sessions/{sid}/lesson")
async def show_step(body: StepBody, record: Controlled, request: Request):
    """The step the session's page shows (needs the token): its watchers see the same step
    and highlight, sent on the stream as `event: lesson`."""
    return await _show_step(request, record, body.lesson, body.step)


@router.post("/ui/sessions/{sid}/lesson", include_in_schema=False)
async def ui_show_step(record: Controlled, request: Request):
    """The same for the page's queued control requests (form fields lesson, step)."""
    form = await request.form()
    lesson, step = form.get("lesson") or None, form.get("step") or None
    await _show_step(request, record, str(lesson) if lesson else None, str(step) if step else None)
    return Response(status_code=204)


# --- the stream's `lesson` event ----------------------------------------------------------
def _config_of(record: SessionRecord, frame: dict) -> SessionConfig:
    """The config the frame was made with: the worker reports it before its reply updates
    record.config, so a frame announcing a change is judged on the new config, not the old."""
    reported = record.worker.reported(record.id)
    if reported is not None and reported[0].get("config_version") == frame.get("config_version"):
        return reported[1]
    return record.config


async def _frame_progress(app: FastAPI, store: SessionStore, record: SessionRecord, step: Step) -> dict | None:
    frame_json = record.frame
    if frame_json is None:
        return None
    frame = json.loads(frame_json)
    seen = board_of(app).observe(record.id, frame.get("status"))
    if step.goal is None:
        return None
    cfg = _config_of(record, frame)
    data = None
    if "data" in step.goal.needs and _points_apply(cfg):
        data = await _points(app, store, record, frame.get("shape_version", -1))
    state = frame_state(frame, cfg.model_dump(), seen=seen, data=data)
    return evaluate(step.goal, state).as_dict()


async def lesson_update(app: FastAPI, store: SessionStore, record: SessionRecord, sent: int) -> tuple[int, str] | None:
    """For the stream (app/routes/events.py): when the session's step or its progress changed
    since the version this stream sent (`sent`, -1 at first), the new version and the
    `lesson` event's JSON {"lesson", "step", "progress"}; else None. The progress is evaluated
    once per frame for all of a session's streams."""
    board = board_of(app)
    entry = board.get(record.id)
    if entry is None or entry.lesson is None and entry.version == 0:
        # No lesson yet: said once, so a watcher's page knows its stream carries lessons.
        return (0, json.dumps({"lesson": None, "step": None, "progress": None})) if sent == -1 else None
    if entry.lesson is not None and entry.evaluated_seq != record.seq:
        entry.evaluated_seq, entry.evaluated_at = record.seq, time.monotonic()
        shown = (entry.lesson, entry.step)
        _, step = find_step(entry.lesson, entry.step)
        try:
            progress = await _frame_progress(app, store, record, step) if step else None
        except FieldError:  # the session ended meanwhile: the stream says so next
            return None
        except Exception:  # a goal's fault must never end a session's stream
            log.exception("lesson %s/%s: evaluating the goal failed", *shown)
            return None
        if (entry.lesson, entry.step) == shown:  # not a step changed while the data was fetched
            board.set_progress(record.id, progress)
    if entry.version == sent:
        return None
    if entry.event is None or entry.event[0] != entry.version:  # encoded once for all the streams
        data = json.dumps({"lesson": entry.lesson, "step": entry.step, "progress": entry.progress})
        entry.event = (entry.version, data)
    return entry.event


# --- pages ----------------------------------------------------------------------------------
@router.get("/learn/{lesson_id}/{step_id}", response_class=HTMLResponse, include_in_schema=False)
async def learn_page(
    lesson_id: str, step_id: str, request: Request, store: Store, control: Actions, settings: AppSettings
):
    """The playground with the lesson panel open on this step, set up as the step says (as a
    share link would). With ?session= of a session this tab holds, that session goes on."""
    try:
        lesson, step = find_step(lesson_id, step_id)
    except FieldError as e:
        message = translator(request_language(request))(f"error.{e.code}", **e.params)
        return error_response(request, NOT_FOUND, e.field, message)
    assert step is not None
    t_lang = request_language(request)
    ctx = await playground_context(
        request, store, control, settings, step.fields, lesson_id=lesson.id, lesson_step=step.id
    )
    ctx["page_title"] = f"{lesson.title(t_lang)} · {ctx['page_title']}"
    return templates.TemplateResponse(request, "index.html", ctx)
