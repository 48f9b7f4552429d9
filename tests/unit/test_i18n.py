"""Every visible string comes from the message catalogs, in both languages."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from app.data import DATASETS
from app.i18n import LANGUAGES, catalog, pick_language
from app.nn import HIDDEN_ACTIVATIONS, INITS, OPTIMIZERS, REGULARIZATIONS, SCHEDULES
from app.presets import PRESETS

ROOT = Path(__file__).resolve().parents[2]
LITERAL = re.compile(r"""\bt\(\s*["']([a-z_][\w.-]*)["']""")
DYNAMIC = re.compile(r"""\bt\(\s*["']([a-z_][\w.]*\.)["']\s*~""")  # t("act." ~ name) in Jinja
JS_TEMPLATE = re.compile(r"""\bt\(\s*`([a-z_][\w.]*\.)\$\{""")  # t(`opt.${name}`) in JS
PY_FSTRING = re.compile(r"""\bt\(\s*f["']([a-z_][\w.]*\.)\{""")  # t(f"opt.{name}") in Python


def error_codes() -> list[str]:
    """Every error code the server can send: code="…" in app/ (CSV codes get the csv_ prefix
    the upload route adds), the proxy's in deploy/, plus the validation handler's "invalid"."""
    codes = {"invalid"}
    for path in ROOT.glob("app/**/*.py"):
        found = re.findall(r"""code=["']([a-z0-9_]+)["']""", path.read_text(encoding="utf-8"))
        codes |= {("csv_" + c) if path.name == "csv_upload.py" else c for c in found}
    for path in ROOT.glob("deploy/*.template"):  # the reverse proxy's own answers (a node down)
        codes |= set(re.findall(r'"code":"([a-z0-9_]+)"', path.read_text(encoding="utf-8")))
    return sorted(codes)


# What each dynamic prefix can be followed by.
DYNAMIC_KEYS = {
    "error.": error_codes(),
    "act.": [*HIDDEN_ACTIVATIONS, "softmax", "linear"],
    "dataset.": [*DATASETS, "custom"],
    "layer.": ["input", "hidden", "output", "loss"],
    "loss.": ["cross_entropy", "mse", "cross_entropy.short", "mse.short"],
    "opt.": list(OPTIMIZERS),
    "reg.": list(REGULARIZATIONS),
    "sched.": list(SCHEDULES),
    "init.": list(INITS),
    "preset.": list(PRESETS),
    "fwd.": ["input", "hidden", "output", "loss"],
    "caption.output.": ["classification", "regression"],
    "caption.loss.": ["classification", "regression"],
    # why a stream ended
    "closed.": ["deleted", "expired", "shutdown", "lost", "moved", "released", "unused", "evicted", "relay_lost"],
}


def used_keys() -> set[str]:
    keys: set[str] = set()
    sources = [*ROOT.glob("templates/**/*.html"), *ROOT.glob("static/js/*.js"), *ROOT.glob("app/routes/*.py")]
    for path in sources:
        text = path.read_text(encoding="utf-8")
        keys |= {k for k in LITERAL.findall(text) if not k.endswith(".")}  # "act." ~ name is dynamic
        for prefix in DYNAMIC.findall(text) + JS_TEMPLATE.findall(text) + PY_FSTRING.findall(text):
            assert prefix in DYNAMIC_KEYS, f"{path.name}: unknown dynamic key prefix {prefix!r}"
            keys |= {prefix + suffix for suffix in DYNAMIC_KEYS[prefix]}
    return keys


def test_the_error_code_scan_finds_codes():
    codes = error_codes()
    assert {"limit_units", "csv_not_number", "csv_too_large", "session_gone", "invalid", "body_too_large"} <= set(codes)


def test_the_scan_finds_keys():
    keys = used_keys()
    assert {"app.title", "transport.play", "act.relu", "dataset.digits", "loss.mse.short"} <= keys
    assert len(keys) > 150


@pytest.mark.parametrize("lang", LANGUAGES)
def test_every_used_key_is_in_the_catalog(lang):
    missing = sorted(used_keys() - set(catalog(lang)))
    assert missing == [], f"missing from {lang}.json: {missing}"


def test_catalogs_have_the_same_keys_and_no_empty_text():
    en, ja = catalog("en"), catalog("ja")
    assert set(en) == set(ja)
    assert all(v.strip() for v in [*en.values(), *ja.values()])
    # Placeholders must match, or a translation would print "{n}" or lose a number.
    for key in en:
        assert set(re.findall(r"\{(\w+)\}", en[key])) == set(re.findall(r"\{(\w+)\}", ja[key])), key


def test_japanese_uses_the_seed_glossary():
    ja = catalog("ja")
    for key, word in {
        "layer.input": "入力層",
        "layer.hidden": "隠れ層",
        "layer.output": "出力層",
        "layer.loss": "損失層",
        "hyper.learning_rate": "学習率",
        "transport.epoch": "エポック",
        "data.batch_size": "バッチサイズ",
        "loss.cross_entropy.short": "交差エントロピー誤差",
        "transport.play": "再生",
        "transport.pause": "一時停止",
        "transport.step": "ステップ",
        "transport.reset": "リセット",
        "hyper.regularization": "正則化",
        "data.noise": "ノイズ",
        "output.test_accuracy": "正解率",
    }.items():
        assert word in ja[key], key


def test_every_catalog_key_is_used():
    unused = sorted(set(catalog("en")) - used_keys())
    assert unused == [], f"keys nobody uses: {unused}"


@pytest.mark.parametrize(
    "query, header, expected",
    [
        ("ja", "en-US", "ja"),
        ("en", "ja", "en"),
        (None, "ja-JP,ja;q=0.9,en;q=0.8", "ja"),
        (None, "en-GB,en;q=0.9", "en"),
        (None, "fr-FR, ja;q=0.5", "ja"),
        (None, "fr", "en"),
        (None, None, "en"),
        ("xx", "ja", "ja"),
        (None, "en;q=0.4, ja;q=0.8", "ja"),
        (None, "ja;q=bad, en", "en"),
    ],
)
def test_language_choice(query, header, expected):
    assert pick_language(query, header) == expected


def test_catalog_files_are_valid_json_objects():
    for lang in LANGUAGES:
        data = json.loads((ROOT / "app" / "i18n" / f"{lang}.json").read_text(encoding="utf-8"))
        assert isinstance(data, dict) and all(isinstance(v, str) for v in data.values())
