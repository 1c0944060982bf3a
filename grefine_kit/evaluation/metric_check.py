"""Calibration: our metrics against the published implementations' own scores.

A *calibration folder* is laid out like pyiqa's ``ResultsCalibra/`` (which works as is):

- ``dist/``: the images to score;
- ``ref/``: their references, same file names (read only by full-reference metrics);
- ``results_official.csv``: header ``Method,<image file>,<image file>,...``, then one row per
  metric: its name and the official implementation's score for each image.

:func:`load_calibration` reads and checks such a folder (a bad one is one ``UserError`` line);
:func:`calibration_targets` lists the installed metrics that have a row (see
:data:`KNOWN_TARGETS` for the names that differ between pyiqa's rows and our registry);
:func:`run_target` scores one of them and returns ours vs official per image. A metric that
cannot run on this machine (weights or a package missing) comes back *unavailable*, with the
reason, instead of failing the whole check.

Row names are matched after normalising (lower case, ``_`` → ``-``): a registered metric
``NAME`` or ``PREFIX:NAME`` (e.g. the grefine-pyiqa plugin's ``pyiqa:brisque``) takes the row
``NAME``. Importing this module loads no model library.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import attrs

from grefine_kit.errors import UserError
from grefine_kit.metrics.base import MetricContext, metric_needs, score_with
from grefine_kit.parts.base import as_part

__all__ = [
    "CSV_NAME",
    "KNOWN_TARGETS",
    "Calibration",
    "CheckResult",
    "Target",
    "calibration_targets",
    "load_calibration",
    "run_target",
]

CSV_NAME = "results_official.csv"
_LAYOUT = f"expected dist/, ref/ and {CSV_NAME}, the layout of pyiqa's ResultsCalibra/"


@attrs.frozen
class Target:
    """One of our parts checked against one row of the official scores.

    ``kind`` is ``metric`` or ``indicator`` (an indicator's image score is used); ``detail``
    names a ``QualityMap.details`` entry to read instead of the score (e.g. PaQ-2-PiQ's
    ``raw_score``, on the official 0..100 scale); ``scale`` multiplies our value onto the
    official scale; ``tolerance`` is the largest |ours − official| counted as reproduced
    (None: not judged).
    """

    row: str
    kind: str
    name: str
    scale: float = 1.0
    detail: str | None = None
    tolerance: float | None = None

    @property
    def label(self) -> str:
        return self.name if self.kind == "metric" else f"{self.name} ({self.kind})"


#: targets whose row and registry name differ, or that carry a tolerance: pyiqa row -> ours
KNOWN_TARGETS: tuple[Target, ...] = (
    Target("piqe", "metric", "piqe", tolerance=0.1),
    Target("psnr", "metric", "psnr", tolerance=0.01),
    Target("ssim", "metric", "ssim", tolerance=0.001),
    Target("paq2piq", "indicator", "paq2piq", detail="raw_score", tolerance=0.1),
)


@attrs.frozen
class Calibration:
    """A checked calibration folder: ``images`` (file names, CSV order) and ``official``
    (row name as written -> one score per image)."""

    root: Path
    images: tuple[str, ...]
    official: dict[str, tuple[float, ...]]

    @property
    def dist(self) -> Path:
        return self.root / "dist"

    @property
    def ref(self) -> Path:
        return self.root / "ref"

    def row_for(self, name: str) -> str | None:
        """The CSV row (as written) whose normalised name is ``name``'s, else None."""
        wanted = normalise(name)
        return next((row for row in self.official if normalise(row) == wanted), None)


@attrs.frozen
class CheckResult:
    """Ours vs official for one target: ``ours`` per image (None where not scored) or
    ``unavailable`` (why it cannot run here) or ``error`` (it ran and failed)."""

    target: Target
    official: tuple[float, ...]
    ours: tuple[float | None, ...] = ()
    unavailable: str = ""
    error: str = ""

    @property
    def diffs(self) -> list[float | None]:
        return [None if o is None else o - ref for o, ref in zip(self.ours, self.official, strict=False)]

    @property
    def max_abs_diff(self) -> float | None:
        values = [abs(d) for d in self.diffs if d is not None and math.isfinite(d)]
        return max(values) if values else None

    @property
    def reproduced(self) -> bool | None:
        """True/False against the target's tolerance (None: no tolerance, or nothing scored)."""
        worst = self.max_abs_diff
        if self.target.tolerance is None or worst is None or len(self.ours) != len(self.official):
            return None
        return worst <= self.target.tolerance


def normalise(name: str) -> str:
    """Row/metric names compared: lower case, ``_`` as ``-``."""
    return name.strip().lower().replace("_", "-")


def load_calibration(folder: str | Path) -> Calibration:
    """Read and check a calibration folder; ``UserError`` (one line) when it is not one."""
    root = Path(folder)
    if not root.is_dir():
        raise UserError(f"{root}: not a folder ({_LAYOUT})")
    table = root / CSV_NAME
    if not table.is_file():
        raise UserError(f"{root}: no {CSV_NAME} ({_LAYOUT})")
    if not (root / "dist").is_dir():
        raise UserError(f"{root}: no dist/ folder ({_LAYOUT})")
    try:
        with table.open(newline="", encoding="utf-8-sig") as fh:
            rows = [row for row in csv.reader(fh) if row and any(cell.strip() for cell in row)]
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise UserError(f"{table}: cannot be read as CSV ({exc})") from None
    if len(rows) < 2 or len(rows[0]) < 2:
        raise UserError(f"{table}: expected a header 'Method,<image>,...' and one row per metric")
    images = tuple(cell.strip() for cell in rows[0][1:])
    official: dict[str, tuple[float, ...]] = {}
    for line, row in enumerate(rows[1:], start=2):
        if len(row) != len(rows[0]):
            raise UserError(f"{table}, line {line}: {len(row)} cells, the header has {len(rows[0])}")
        try:
            official[row[0].strip()] = tuple(float(cell) for cell in row[1:])
        except ValueError:
            raise UserError(f"{table}, line {line}: a score that is not a number") from None
    missing = [name for name in images if not (root / "dist" / name).is_file()]
    if missing:
        raise UserError(f"{root / 'dist'}: {missing[0]} is in {CSV_NAME} but not in the folder")
    return Calibration(root=root, images=images, official=official)


def calibration_targets(calibration: Calibration, registry: Any = None) -> list[Target]:
    """The installed metrics (and the indicators of :data:`KNOWN_TARGETS`) that have a row,
    in the CSV's row order; one target per (kind, name)."""
    if registry is None:
        from grefine_kit.parts.registry import get_registry

        registry = get_registry()
    found: dict[tuple[str, str], Target] = {}
    for known in KNOWN_TARGETS:
        row = calibration.row_for(known.row)
        if row is not None and known.name in registry.names(known.kind):
            found[(known.kind, known.name)] = attrs.evolve(known, row=row)
    for name in registry.names("metric"):
        row = calibration.row_for(name.rsplit(":", 1)[-1])
        if row is not None and ("metric", name) not in found:
            found[("metric", name)] = Target(row, "metric", name)
    order = {row: i for i, row in enumerate(calibration.official)}
    return sorted(found.values(), key=lambda t: (order[t.row], t.kind, t.name))


def _unavailable_reason(part: Any, target: Target) -> str:
    """Why ``part`` cannot run here according to the cheap pre-flight checks ('' = it can)."""
    from grefine_kit.readiness.preflight import WEIGHTS, check_parts, fetch_command

    lines = []
    for item in check_parts({target.name: part}):
        fix = item.fix
        if item.kind == WEIGHTS and target.kind == "indicator":
            fix = fetch_command(indicator=target.name)
        lines.append(f"{item.what}" + (f" -> {fix}" if fix else ""))
    return "; ".join(dict.fromkeys(lines))


def _images(folder: Path, names: Sequence[str]) -> list[Any]:
    from grefine_kit.images.loading import load_image

    return [load_image(folder / name) for name in names]


def _scorer(target: Target, part: Any, calibration: Calibration) -> Callable[[Any, str], float]:
    """``(image, file name) -> our value on the official scale`` for a built part."""
    if target.kind == "indicator":

        def indicator_value(image: Any, _name: str) -> float:
            (q,) = part.score([image])
            raw = q.details.get(target.detail) if target.detail else None
            return float(raw if raw is not None else q.score * target.scale)

        return indicator_value
    if not metric_needs(part):
        return lambda image, _name: float(part.score([image])[0]) * target.scale

    def reference_value(image: Any, name: str) -> float:
        (reference,) = _images(calibration.ref, [name])
        context = MetricContext(reference=reference)
        return float(score_with(part, [image], None, [context])[0]) * target.scale

    return reference_value


def run_target(
    target: Target,
    calibration: Calibration,
    *,
    registry: Any = None,
    on_image: Callable[[str], None] | None = None,
) -> CheckResult:
    """Score every image of ``calibration`` with ``target``'s part; never raises for the part's
    own problems (they come back as ``unavailable`` or ``error``)."""
    official = calibration.official[target.row]
    if registry is None:
        from grefine_kit.parts.registry import get_registry

        registry = get_registry()
    try:
        part = registry.create(target.kind, target.name, {})
    except UserError as exc:
        return CheckResult(target, official, unavailable=str(exc))
    reason = _unavailable_reason(part, target)
    if reason:
        return CheckResult(target, official, unavailable=reason)
    if target.kind == "metric":
        if as_part(part).needs_prompt:
            return CheckResult(target, official, unavailable="needs a prompt per image (the folder has none)")
        extra = metric_needs(part) - {"reference"}
        if extra:
            return CheckResult(
                target, official, unavailable=f"needs {', '.join(sorted(extra))} (not in the folder)"
            )
        if metric_needs(part) and not calibration.ref.is_dir():
            return CheckResult(target, official, unavailable="needs reference images (no ref/ folder)")
    ours: list[float | None] = []
    try:
        score = _scorer(target, part, calibration)
    except UserError as exc:
        return CheckResult(target, official, unavailable=_one_line(exc))
    for name in calibration.images:
        if on_image is not None:
            on_image(name)
        try:
            (image,) = _images(calibration.dist, [name])
        except UserError as exc:
            return CheckResult(target, official, tuple(ours), error=f"{name}: {_one_line(exc)}")
        try:
            ours.append(score(image, name))
        except (UserError, ImportError) as exc:  # weights, packages, files: this machine lacks them
            return CheckResult(target, official, unavailable=_one_line(exc))
        except Exception as exc:  # a part's failure is reported, and the check goes on
            return CheckResult(target, official, tuple(ours), error=f"{type(exc).__name__}: {_one_line(exc)}")
    return CheckResult(target, official, tuple(ours))


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def format_result(result: CheckResult, images: Iterable[str]) -> list[str]:
    """The lines ``grefine metrics check`` prints for one target."""
    target = result.target
    head = f"{target.label}  (official row '{target.row}'"
    head += f", tolerance {target.tolerance:g})" if target.tolerance is not None else ")"
    if result.unavailable:
        return [f"{head}: cannot run here: {result.unavailable}"]
    lines = [head, f"  {'image':<14}{'official':>12}{'ours':>12}{'diff':>11}"]
    for name, ref, ours, diff in zip(images, result.official, result.ours, result.diffs, strict=False):
        shown = (
            f"{ours:>12.4f}{diff:>+11.4f}" if ours is not None and diff is not None else f"{'-':>12}{'-':>11}"
        )
        lines.append(f"  {name:<14}{ref:>12.4f}{shown}")
    if result.error:
        lines.append(f"  error: {result.error}")
    worst = result.max_abs_diff
    if worst is not None:
        verdict = {True: "  reproduced", False: "  NOT reproduced", None: ""}[result.reproduced]
        lines.append(f"  max |diff| {worst:.4f}{verdict}")
    return lines
