"""The dependencies routes declare, as `Annotated` aliases: `record: Controlled` is a session
the request carries the control token of; `control: Actions` is the control layer."""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import Depends, Header, Path, Request

from app.control import Control
from app.errors import FieldError
from app.settings import Settings
from app.store import SessionRecord, SessionStore

SessionId = Annotated[str, Path(min_length=1, max_length=64, description="the session id")]
SnapshotId = Annotated[str, Path(min_length=1, max_length=64, description="the snapshot id")]


def _settings(request: Request) -> Settings:
    # The app's own settings (tests create apps with their own), not the environment's.
    return request.app.state.settings


def _store(request: Request) -> SessionStore:
    return request.app.state.store


def _control(request: Request) -> Control:
    return request.app.state.control


def bearer_token(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


AppSettings = Annotated[Settings, Depends(_settings)]
Store = Annotated[SessionStore, Depends(_store)]
Actions = Annotated[Control, Depends(_control)]


async def _controlled(sid: SessionId, request: Request, store: Store) -> SessionRecord:
    """The session, if the request carries its control token (401 without, 403 wrong)."""
    return store.authorize(sid, bearer_token(request))


async def _viewed(sid: SessionId, store: Store) -> SessionRecord:
    return store.get(sid)


def _admin(
    settings: AppSettings,
    x_admin_token: Annotated[str | None, Header(description="needed when ADMIN_TOKEN is set")] = None,
) -> None:
    """On a shared server (ADMIN_TOKEN set), managing snapshots and reading stats need the admin token."""
    if settings.admin_token is None:
        return
    if not x_admin_token:
        raise FieldError(
            "x-admin-token", "this server needs the admin token (X-Admin-Token) for that", code="admin_missing"
        )
    if not hmac.compare_digest(x_admin_token.encode(), settings.admin_token.encode()):
        raise FieldError("x-admin-token", "wrong admin token", code="admin_wrong")


Controlled = Annotated[SessionRecord, Depends(_controlled)]
Viewed = Annotated[SessionRecord, Depends(_viewed)]
Admin = Annotated[None, Depends(_admin)]
