"""The cluster tests' stack: deploy/cluster.py's Cluster (PostgreSQL, Redis, nodes a and b,
nginx) on random loopback ports, one per test module.

These tests need Debian's nginx, redis-server and postgresql. In CI (CI=true) a missing one
fails the tests (.ci/run installs them); elsewhere they are skipped with a loud reason.
"""

from __future__ import annotations

import os
import shutil

import httpx
import pytest

from deploy.cluster import Cluster
from deploy.nginx import find_nginx
from deploy.postgres import find_binary

# The tests' node settings, as tests/support/live.py's start_server: the NumPy engine only (no
# compile on first play) and no snapshot write limit (every test saves from 127.0.0.1).
NODE_ENV = {"COMPILED_ENGINE": "false", "SNAPSHOT_WRITES_PER_MINUTE": "0"}


def require_cluster_binaries() -> None:
    missing = [
        name
        for name, found in (
            ("nginx", find_nginx()),
            ("redis-server", shutil.which("redis-server")),
            ("postgresql (initdb, pg_ctl)", find_binary("initdb") and find_binary("pg_ctl")),
        )
        if not found
    ]
    if not missing:
        return
    message = (
        "\n" + "!" * 78 + f"\n  CLUSTER TESTS SKIPPED: missing {', '.join(missing)}"
        "\n  (apt-get install nginx redis-server postgresql)\n" + "!" * 78
    )
    if os.environ.get("CI") == "true":
        pytest.fail("the cluster's programs are missing in CI: the cluster tests must not skip" + message)
    print(message)
    pytest.skip(f"missing {', '.join(missing)}")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory) -> Cluster:
    require_cluster_binaries()
    stack = Cluster(tmp_path_factory.mktemp("cluster"), env=NODE_ENV, quiet=True)
    with stack:
        yield stack


@pytest.fixture
def proxy(cluster) -> httpx.Client:
    """A client of the cluster's one address (nginx)."""
    with httpx.Client(base_url=cluster.url, timeout=15) as c:
        yield c
