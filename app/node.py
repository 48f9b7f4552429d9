"""Node-aware ids: with NODE_ID set, every session id this node creates starts with
"{NODE_ID}." so a reverse proxy can send each request to the node that holds the session
(deploy/nginx.conf routes on that prefix; no sticky cookies, which fail in wiki iframes).

Without NODE_ID ids are as they always were. Both forms are accepted everywhere: the random
part never contains a dot (token_urlsafe uses A–Z a–z 0–9 - _), so the prefix is unambiguous.
"""

from __future__ import annotations

import re
import secrets

# Lower-case letters, digits and '-', at most 16: safe in a URL path, an nginx upstream name
# and a Redis key, and short enough that a prefixed id stays within the 64-character id limit.
NODE_ID_PATTERN = r"^[a-z0-9][a-z0-9-]{0,15}$"
_NODE_ID = re.compile(NODE_ID_PATTERN)


def valid_node_id(node_id: str) -> bool:
    return bool(_NODE_ID.match(node_id))


def new_session_id(node_id: str | None) -> str:
    """A fresh session id: 192 random bits, prefixed with the node when there is one."""
    token = secrets.token_urlsafe(24)
    return f"{node_id}.{token}" if node_id else token


def node_of(sid: str) -> str | None:
    """The node named in a session id, or None for an id without one."""
    node, dot, _ = sid.partition(".")
    return node if dot and valid_node_id(node) else None
