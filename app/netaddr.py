"""Addresses people can reach this server at (for watch links and QR codes)."""

from __future__ import annotations

import socket

LOOPBACK = {"127.0.0.1", "localhost", "::1", "[::1]"}
ALL_INTERFACES = {"0.0.0.0", "::", ""}


def lan_address() -> str:
    """This machine's address on the local network. No packet is sent: connect() on a UDP
    socket only asks the kernel which interface would route to that (documentation) address."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.connect(("192.0.2.1", 9))
            return s.getsockname()[0]
        except OSError:
            return "127.0.0.1"


def public_base_url(scheme: str, host: str | None, port: int | None, bind_host: str) -> str:
    """The base URL to hand out: a teacher who opened http://localhost on a server bound to
    every interface gets the LAN address instead, which students' devices can open."""
    if (host or "") in LOOPBACK and bind_host in ALL_INTERFACES:
        host = lan_address()
    if host and ":" in host and not host.startswith("["):
        host = f"[{host}]"
    default = {"http": 80, "https": 443}.get(scheme)
    return f"{scheme}://{host}" + ("" if port in (None, default) else f":{port}")


def reachable_from_others(bind_host: str) -> bool:
    return bind_host not in LOOPBACK
