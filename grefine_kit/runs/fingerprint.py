"""Fingerprints: what an item's outputs were made from, so a rerun trusts only matching work.

A fingerprint holds the input file's size, mtime and SHA-256, a hash of the prompt, the seed,
a hash of the run's configuration (recipe or indicator) and the output options. A record is
current only when its fingerprint equals the one the rerun computes; otherwise
:func:`stale_reason` names what changed ("prompt changed", "input file changed" ...).
Like make and rsync, an unchanged size and mtime let a rerun reuse the recorded SHA-256
instead of reading the file again; a changed mtime with the same content is not stale.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import stat
from collections.abc import Mapping
from pathlib import Path
from typing import Any

__all__ = ["config_hash", "file_fingerprint", "indicator_config", "item_fingerprint", "stale_reason"]

_CHUNK = 1 << 20


def config_hash(config: Mapping[str, Any]) -> str:
    """A short stable hash of a JSON-able configuration."""
    text = json.dumps(config, sort_keys=True, default=str, ensure_ascii=True)
    return hashlib.sha256(text.encode("ascii")).hexdigest()[:16]


def indicator_config(indicator: Any) -> dict[str, Any]:
    """What identifies an indicator's setup: its name and, for an attrs class, its init options
    (scalars, strings and sequences of them; model objects and devices are left out)."""
    import attrs

    from grefine_kit.parts.base import as_part

    config: dict[str, Any] = {
        "indicator": as_part(indicator).name,
        "class": f"{type(indicator).__module__}.{type(indicator).__qualname__}",
    }
    if attrs.has(type(indicator)):
        values = attrs.asdict(indicator, recurse=False)
        for field in attrs.fields(type(indicator)):
            if not field.init or field.name in ("device", "batch_size"):  # no effect on results
                continue
            value = values.get(field.name)
            if isinstance(value, (str, int, float, bool, type(None))) or (
                isinstance(value, (tuple, list))
                and all(isinstance(v, (str, int, float, bool, tuple, list)) for v in value)
            ):
                config[field.name] = value
    return config


def file_fingerprint(path: Path, known: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """``{"size", "mtime_ns", "sha256"}`` of ``path``. With ``known`` (a recorded one) of the same
    size and mtime, its SHA-256 is reused instead of reading the file. Raises OSError (also for
    anything that is not a regular file)."""
    st = os.stat(path)
    if not stat.S_ISREG(st.st_mode):  # a FIFO would block the hash (and the loader) forever
        raise OSError(errno.EINVAL, "not a regular file", str(path))
    if known and known.get("size") == st.st_size and known.get("mtime_ns") == st.st_mtime_ns:
        sha = known.get("sha256")
        if isinstance(sha, str):
            return {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "sha256": sha}
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
    return {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "sha256": h.hexdigest()}


def item_fingerprint(
    path: Path,
    *,
    prompt: str | None,
    seed: int | None,
    config: str,
    options: Mapping[str, Any],
    known: Mapping[str, Any] | None = None,
    region_prompts: str | None = None,
) -> dict[str, Any]:
    """The fingerprint of one item. ``known``: the recorded fingerprint, for the cheap input check.
    ``region_prompts``: the item's own region prompts (a manifest column), when it has some."""
    known_input = known.get("input") if isinstance(known, Mapping) else None
    out: dict[str, Any] = {
        "input": file_fingerprint(path, known_input if isinstance(known_input, Mapping) else None),
        "prompt": None if prompt is None else _text_hash(prompt),
        "seed": seed,
        "config": config,
        "options": dict(options),
    }
    if region_prompts is not None:  # absent otherwise: records of older versions stay current
        out["region_prompts"] = _text_hash(region_prompts)
    return out


def _text_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:16]


_WHAT = (
    ("prompt", "prompt changed"),
    ("region_prompts", "region prompts changed"),
    ("seed", "seed changed"),
    ("config", "recipe or indicator changed"),
)


def _options_cover(recorded: Any, current: Mapping[str, Any]) -> bool:
    # output options are "write more" flags: a record made with maps also serves a run without
    if not isinstance(recorded, Mapping):
        return not any(current.values())
    return all(not want or recorded.get(key) == want for key, want in current.items())


def stale_reason(recorded: Any, current: Mapping[str, Any]) -> str | None:
    """None when ``recorded`` matches ``current``; else why not, in a few words. Output options
    match when the recorded run wrote at least what is asked now (maps on covers maps off)."""
    if not isinstance(recorded, Mapping):
        return "no fingerprint (written by an older version)"
    old_input = recorded.get("input")
    if not isinstance(old_input, Mapping) or old_input.get("sha256") != current["input"]["sha256"]:
        return "input file changed"
    for key, why in _WHAT:
        if recorded.get(key) != current.get(key):
            return why
    if not _options_cover(recorded.get("options"), current.get("options") or {}):
        return "output options changed"
    return None
