"""The server's settings (every ``grefine serve`` option) and the small parsers they use."""

from __future__ import annotations

import math
import re
from pathlib import Path

import attrs

from grefine_kit.errors import UserError

__all__ = ["API_PREFIX", "DEFAULTS", "ServeDefaults", "ServeSettings", "parse_duration", "parse_size"]

#: every API route lives under this prefix; a breaking change gets /v2 next to it
API_PREFIX = "/v1"

_UNITS = {"": 1.0, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_SIZES = {"": 1, "b": 1, "k": 1000, "kb": 1000, "m": 10**6, "mb": 10**6, "g": 10**9, "gb": 10**9}


def parse_duration(text: str | float, what: str) -> float:
    """``"90"``, ``"90s"``, ``"30m"``, ``"2h"``, ``"1d"`` -> seconds (above 0)."""
    found = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([smhd]?)\s*", str(text).lower())
    if not found:
        raise UserError(f"{what} must be a duration such as 90s, 30m, 2h or 1d; got {text!r}")
    seconds = float(found.group(1)) * _UNITS[found.group(2)]
    if not seconds > 0 or not math.isfinite(seconds):
        raise UserError(f"{what} must be above 0; got {text!r}")
    return seconds


def parse_size(text: str | int, what: str) -> int:
    """``"20MB"``, ``"500k"``, ``"1000000"`` -> bytes (at least 1; decimal units)."""
    found = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([kmg]?b?)\s*", str(text).lower())
    if not found:
        raise UserError(f"{what} must be a size such as 20MB or 500kB; got {text!r}")
    size = int(float(found.group(1)) * _SIZES[found.group(2)])
    if size < 1:
        raise UserError(f"{what} must be at least 1 byte; got {text!r}")
    return size


@attrs.frozen
class ServeDefaults:
    """The one place the server's defaults are written: ``grefine serve`` shows these (the
    durations and the upload size as text) and :class:`ServeSettings` takes them parsed."""

    host: str = "127.0.0.1"
    port: int = 8765
    workers: int = 1
    queue_size: int = 32
    max_upload: str = "20MB"
    max_pixels: int = 16_000_000
    keep: str = "24h"
    job_timeout: str = "30m"
    abandon_after: str = "10m"


DEFAULTS = ServeDefaults()


def _positive_int(name: str):  # type: ignore[no-untyped-def]
    def check(_inst: object, _attr: object, value: int) -> None:
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise UserError(f"{name} must be a whole number of at least 1; got {value!r}")

    return check


@attrs.frozen
class ServeSettings:
    """What one server process does. Defaults are the safe ones (docs/serve.md explains each).

    ``out``: the folder every job's upload and results go to (nothing is written elsewhere);
    ``recipes``: the recipe names requests may pick (None: every registered recipe), plus the
    operator's own ``recipe_files``; ``device``: the one device this process runs on (None: each
    recipe's own); ``token``: when set, every API call but health needs
    ``Authorization: Bearer <token>``.
    """

    out: Path
    host: str = DEFAULTS.host
    port: int = DEFAULTS.port
    token: str | None = None
    device: str | None = None
    workers: int = attrs.field(default=DEFAULTS.workers, validator=_positive_int("--workers"))
    queue_size: int = attrs.field(default=DEFAULTS.queue_size, validator=_positive_int("--queue"))
    max_upload_bytes: int = attrs.field(
        default=parse_size(DEFAULTS.max_upload, "--max-upload"), validator=_positive_int("--max-upload")
    )
    max_pixels: int = attrs.field(default=DEFAULTS.max_pixels, validator=_positive_int("--max-pixels"))
    keep_seconds: float = parse_duration(DEFAULTS.keep, "--keep")
    job_timeout: float = parse_duration(DEFAULTS.job_timeout, "--job-timeout")
    abandon_after: float = parse_duration(DEFAULTS.abandon_after, "--abandon-after")
    recipes: tuple[str, ...] | None = None
    recipe_files: tuple[Path, ...] = ()
    default_recipe: str | None = None
    preload: tuple[str, ...] = ()
