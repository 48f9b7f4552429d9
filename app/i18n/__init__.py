"""Message catalogs (日本語 / English) and the choice of language for a request.

Every visible string lives in en.json and ja.json under the same flat keys; templates
call t("key") and the page's JS receives the whole catalog of its language. A test
checks that every key used anywhere exists in both catalogs.
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

LANGUAGES = ("en", "ja")
DEFAULT = "en"
_DIR = Path(__file__).parent


@lru_cache
def catalog(lang: str) -> dict[str, str]:
    return json.loads((_DIR / f"{lang}.json").read_text(encoding="utf-8"))


def pick_language(query: str | None, accept_language: str | None) -> str:
    """?lang= wins; otherwise the first supported language in Accept-Language (by q)."""
    if query in LANGUAGES:
        return query
    best, best_q = DEFAULT, -1.0
    for part in (accept_language or "").split(","):
        tag, _, params = part.strip().partition(";")
        q = 1.0
        if params.strip().startswith("q="):
            try:
                q = float(params.strip()[2:])
            except ValueError:
                continue
        base = tag.strip().lower().split("-")[0]
        if base in LANGUAGES and q > best_q:
            best, best_q = base, q
    return best


def translator(lang: str):
    messages = catalog(lang)
    fallback = catalog(DEFAULT)

    def t(key: str, **values) -> str:
        text = messages.get(key) or fallback.get(key) or key
        return text.format(**values) if values else text

    return t
