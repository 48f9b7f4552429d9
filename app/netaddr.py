"""Addresses people can reach this server at (for watch links and QR codes), and the Host
names this server answers to (everything else is refused: DNS rebinding)."""

from __future__ import annotations

import socket
from typing import Protocol
from urllib.parse import urlsplit

from app.settings import Settings

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


def machine_names() -> list[str]:
    """This machine's own names and LAN address, as students' devices may type them."""
    name = socket.gethostname().lower()
    names = [lan_address(), name, f"{name}.local"] if name else [lan_address()]
    return [n for n in names if n]


def bracketed(host: str) -> str:
    """An IPv6 address as it appears in a Host header or URL ([::1]); other hosts unchanged."""
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


def allowed_hosts(settings: Settings) -> list[str]:
    """Host header values (without port) this server answers: the localhost names; the
    machine's names and address when bound to every interface (or the address it is bound
    to); ALLOWED_HOSTS; and PUBLIC_URL's host."""
    hosts = list(LOOPBACK)
    if settings.host in ALL_INTERFACES:
        hosts += machine_names()
    else:
        hosts.append(settings.host)
    hosts += [h.strip() for h in settings.allowed_hosts.split(",") if h.strip()]
    if settings.public_url:
        public = urlsplit(settings.public_url).hostname
        hosts += [public] if public else []
    return sorted({bracketed(h.lower()) for h in hosts if h})


class RequestURL(Protocol):
    """What share_base_url reads of a request's URL (starlette.datastructures.URL)."""

    @property
    def scheme(self) -> str: ...
    @property
    def hostname(self) -> str | None: ...
    @property
    def port(self) -> int | None: ...


def share_base_url(settings: Settings, url: RequestURL) -> str:
    """The base of links handed out: PUBLIC_URL when set; otherwise the address the request
    came to (a request's URL), whose host the Host check has already accepted (app/origin.py)."""
    if settings.public_url:
        return settings.public_url.rstrip("/")
    return public_base_url(url.scheme, url.hostname, url.port, settings.host)
