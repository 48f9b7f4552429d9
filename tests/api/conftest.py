"""API tests run in-process (tests/support/inprocess.py): `client` here is the app served
through httpx.ASGITransport, so `make_session` makes its sessions there too. Tests that
read a live stream or restart a server ask for `live_client` / `server` / `start_server`."""

from __future__ import annotations

import pytest


@pytest.fixture
def client(app_client):
    return app_client
