"""Record dicts as the writers see them: which kind a dict is, its JSON form with trimmed numbers, and text that
is always valid UTF-8 whatever the file names (`safe_text`).

The key order of each kind lives in `vivitcli.records.RECORD_KEYS`; this module only reads it. Stdlib only.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

from vivitcli.records import RECORD_KEYS, plain as tolist  # one numpy -> list converter

KINDS = tuple(RECORD_KEYS)

# Digits in text outputs (API.md): softmax scores, embeddings (9 significant digits round-trip float32 exactly),
# timestamps and window bounds (decimals).
SCORE_DIGITS = 6
EMBED_DIGITS = 9
TIME_DECIMALS = 6


# A file name that is not valid UTF-8 reaches Python as a str holding lone surrogates (os.fsdecode: b"caf\xe9" ->
# "caf\udce9"), which no UTF-8 writer accepts. Every output writes each one as the six characters `\udcXX`.
_SURROGATE = re.compile("[\ud800-\udfff]")
# What `original_text` reads back as one character: a surrogate's escape, or `\u005c` (a backslash).
_PLAIN_ESCAPE = re.compile(r"\\u(?:d[89a-f][0-9a-f]{2}|005c)", re.IGNORECASE)


def safe_text(text: str, *, plain: bool = False) -> str:
    r"""`text` with each lone surrogate written as the escape `\udcXX`: encodable as UTF-8, nothing lost.

    For JSON text (`plain=False`; give it json.dumps' output, see `json_text`) that is JSON's own escape, so
    json.loads gives the same str back and os.fsencode the name's bytes. For a plain string (`plain=True`: csv
    cells, Parquet strings, the .npz `paths`) a backslash that would read as such an escape is written `\u005c`
    as well, so that `original_text` is exact for every name; names without surrogates are left as they are
    (unless they hold the text `\udcXX` or `\u005c` itself).
    """
    if plain and "\\" in text:
        text = _PLAIN_ESCAPE.sub(lambda m: "\\u005c" + m.group()[1:], text)
    if text.isascii():
        return text
    return _SURROGATE.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


def original_text(text: str) -> str:
    """The str `safe_text(..., plain=True)` was given (lone surrogates back; os.fsencode of a path gives its bytes)."""
    if "\\" not in text:
        return text
    return _PLAIN_ESCAPE.sub(lambda m: chr(int(m.group()[2:], 16)), text)


def json_text(value, **kwargs) -> str:
    """json.dumps(value, ensure_ascii=False, **kwargs) that is always valid UTF-8 (see `safe_text`)."""
    return safe_text(json.dumps(value, ensure_ascii=False, **kwargs))


def record_keys(kind: str) -> tuple[str, ...]:
    """The keys every record of `kind` carries (failed inputs included), in output order."""
    try:
        return RECORD_KEYS[kind]
    except KeyError:
        raise ValueError(f"unknown record kind {kind!r} (one of {', '.join(KINDS)})") from None


def make_record(kind: str, **values: Any) -> dict:
    """A record dict with every key of its kind present (None where unknown), in the stable order."""
    keys = record_keys(kind)
    if kind == "embed" and "window" in values:  # embed --window: window, start, end after path
        keys = keys[:1] + ("window", "start", "end") + keys[1:]
    unknown = set(values) - set(keys)
    if unknown:
        raise ValueError(f"{kind} records have no key(s) {sorted(unknown)}")
    return {key: values.get(key) for key in keys}


def record_kind(record: dict) -> str | None:
    """"classify", "embed" or "window" from the keys a record carries; None for a dict that is none of them."""
    if not isinstance(record, dict) or not isinstance(record.get("path"), str):
        return None
    if "embedding" in record:
        return "embed"
    if "labels" in record:
        return "window" if "window" in record else "classify"
    return None


def trim(x, digits: int) -> float | None:
    """A float trimmed to `digits` significant digits; NaN/inf -> None (JSON has no such numbers)."""
    x = float(x)
    if not math.isfinite(x):
        return None
    return float(f"{x:.{digits}g}")


def _round_nested(value, ndigits: int):
    if isinstance(value, list):
        return [_round_nested(v, ndigits) for v in value]
    return None if value is None else round(float(value), ndigits)


def _labels(items) -> list[dict]:
    return [{"label": item["label"], "score": trim(item["score"], SCORE_DIGITS), "index": int(item["index"])}
            for item in items]


def jsonable(record: dict) -> dict:
    """A record with numpy values turned into plain JSON values, numbers trimmed as API.md says."""
    out = {}
    for key, value in record.items():
        if value is None:
            out[key] = None
        elif key == "embedding":
            out[key] = [trim(v, EMBED_DIGITS) for v in tolist(value)]
        elif key in ("timestamps", "start", "end"):
            out[key] = _round_nested(tolist(value) if key == "timestamps" else value, TIME_DECIMALS)
        elif key == "frame_indices":
            out[key] = tolist(value)
        elif key == "labels":
            out[key] = _labels(value)
        elif key == "heads":
            out[key] = {name: _labels(items) for name, items in value.items()}
        elif key in ("dim", "window"):
            out[key] = int(value)
        else:
            out[key] = value
    return out
