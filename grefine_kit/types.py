"""Value types passed between parts.

Conventions (docs/design.md section 6): every map is a float32 ``(H, W)`` array in
``[0, 1]`` where 1 means *good*; masks are float32 ``(H, W)`` arrays where 1
means *repaint* (the diffusers convention). Scores are floats in ``[0, 1]``,
higher is better.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any, NoReturn, Protocol, TypeAlias, runtime_checkable

import attrs
import numpy as np

__all__ = [
    "AlignmentReport",
    "FrozenDict",
    "JSONValue",
    "Mask",
    "Phrase",
    "PhraseReport",
    "PromptTree",
    "QualityMap",
    "ToJSON",
    "Token",
]


#: a value as JSON (and TOML) holds it: what ``to_json`` methods and recipe tables are made of
JSONValue: TypeAlias = "bool | int | float | str | list[JSONValue] | dict[str, JSONValue] | None"


@runtime_checkable
class ToJSON(Protocol):
    """A value that says how it is written as JSON (``QualityMap``, ``AlignmentReport``, ...)."""

    def to_json(self) -> JSONValue: ...


def _as_unit_map(value: Any) -> np.ndarray:
    arr = np.asarray(value, dtype=np.float32)
    if arr.ndim != 2:
        raise ValueError(f"a map must be 2-D (H, W); got shape {arr.shape}")
    if arr.size == 0:
        raise ValueError("a map must not be empty")
    if not np.isfinite(arr).all():
        raise ValueError("a map must be finite (no NaN or inf)")
    if arr.min() < -1e-5 or arr.max() > 1 + 1e-5:
        raise ValueError(f"map values must lie in [0, 1]; got [{arr.min():.4g}, {arr.max():.4g}]")
    arr = np.clip(arr, 0.0, 1.0)
    arr.setflags(write=False)
    return arr


def _check_unit_score(_inst: Any, attribute: attrs.Attribute[Any], value: float) -> None:
    if not (math.isfinite(value) and -1e-6 <= value <= 1 + 1e-6):
        raise ValueError(f"{attribute.name} must be a finite number in [0, 1]; got {value!r}")


class FrozenDict(dict[str, Any]):
    """A read-only ``dict``: every mutating method raises ``TypeError``. Unlike
    ``types.MappingProxyType`` it pickles (results cross process boundaries) and is JSON-able."""

    def _read_only(self, *_args: Any, **_kwargs: Any) -> NoReturn:
        raise TypeError(f"{type(self).__name__} is read-only")

    __setitem__ = __delitem__ = __ior__ = _read_only
    clear = pop = popitem = setdefault = update = _read_only

    def __reduce__(self) -> tuple[Any, ...]:
        return (FrozenDict, (dict(self),))


def _frozen_mapping(value: Mapping[str, Any] | None) -> Mapping[str, Any]:
    # a read-only private copy: neither the caller nor a reader can change it later
    return FrozenDict(value or {})


@attrs.frozen
class QualityMap:
    """The output of an indicator for one image.

    Attributes:
        map: float32 ``(H, W)`` in ``[0, 1]``, 1 = good, at the input image's size.
        score: the image-level score in ``[0, 1]``, higher is better.
        indicator: the registry name of the indicator that produced it.
        details: per-part extras (e.g. PQ-Map's four factors), a read-only mapping of plain
            Python/NumPy values; ``to_json`` keeps the JSON-able ones.
        report: the alignment findings (AQ-Map), typed; None for other indicators.
    """

    map: np.ndarray = attrs.field(converter=_as_unit_map, eq=False, repr=False)
    score: float = attrs.field(converter=float, validator=_check_unit_score)
    indicator: str = ""
    details: Mapping[str, Any] = attrs.field(factory=dict, converter=_frozen_mapping, eq=False)
    report: AlignmentReport | None = attrs.field(default=None, eq=False)

    @property
    def size(self) -> tuple[int, int]:
        """``(width, height)`` like PIL."""
        h, w = self.map.shape
        return (w, h)

    def to_json(self) -> dict[str, Any]:
        """Score and JSON-able details, the alignment report under ``details.report`` (maps are
        left out: save them as ``.npy``)."""
        out: dict[str, Any] = {
            "indicator": self.indicator,
            "score": self.score,
            "details": _jsonable(self.details),
        }
        if self.report is not None:  # JSON readers find it where earlier versions put it
            out["details"]["report"] = self.report.to_json()
        return out


class _Skip:
    """The marker of a value JSON cannot hold (left out of its list or mapping)."""


_SKIP = _Skip()


def _jsonable(value: Any) -> JSONValue | _Skip:
    """``value`` as JSON, or ``_SKIP`` for a value JSON cannot hold (large arrays, other objects)."""
    if isinstance(value, Mapping):
        out: dict[str, JSONValue] = {}
        for k, v in value.items():
            j = _jsonable(v)
            if not isinstance(j, _Skip):
                out[str(k)] = j
        return out
    if isinstance(value, (list, tuple)):
        return [j for j in (_jsonable(v) for v in value) if not isinstance(j, _Skip)]
    if attrs.has(type(value)):
        if isinstance(value, ToJSON):
            return value.to_json()
        return _jsonable(attrs.asdict(value, recurse=False))
    if isinstance(value, np.ndarray):
        return value.tolist() if value.size <= 16 else _SKIP
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if value is None or isinstance(value, (str, int, bool)):
        return value
    return _SKIP


@attrs.frozen
class Mask:
    """A combiner's output at the image's size.

    Attributes:
        binary: float32 ``(H, W)`` of 0/1, 1 = repaint.
        soft: float32 ``(H, W)`` in ``[0, 1]``: the feathered blend weight used to
            paste the refined pixels back (1 = take the refined pixel).
    """

    binary: np.ndarray = attrs.field(converter=_as_unit_map, eq=False, repr=False)
    soft: np.ndarray = attrs.field(converter=_as_unit_map, eq=False, repr=False)

    def __attrs_post_init__(self) -> None:
        if self.binary.shape != self.soft.shape:
            raise ValueError(f"binary {self.binary.shape} and soft {self.soft.shape} masks differ in shape")

    @property
    def area(self) -> float:
        """Fraction of pixels to repaint, in ``[0, 1]``."""
        return float(self.binary.mean())


# --- prompts ---------------------------------------------------------------------------


@attrs.frozen
class Token:
    """One token of a parsed prompt.

    ``head`` is the index of the head token in ``PromptTree.tokens`` or -1 for the root.
    ``pos`` is a Universal POS tag (NOUN, PROPN, VERB, ADJ, ...); ``dep`` the dependency label.
    ``start``/``end`` are character offsets into ``PromptTree.text``.
    """

    text: str
    start: int
    end: int
    pos: str
    head: int
    dep: str = ""
    lemma: str = ""


def _tokens(value: Iterable[Token]) -> tuple[Token, ...]:
    return tuple(value)


def _indices(value: Iterable[int]) -> tuple[int, ...]:
    return tuple(int(i) for i in value)


@attrs.frozen
class PromptTree:
    """A prompt parsed into one dependency tree.

    Exactly one token has ``head == -1`` unless the prompt has no tokens. Parsers join
    the roots of several sentences under the first sentence's root (dep ``"parataxis"``).
    """

    text: str
    tokens: tuple[Token, ...] = attrs.field(converter=_tokens)
    parser: str = ""

    def __attrs_post_init__(self) -> None:
        n = len(self.tokens)
        roots = [i for i, t in enumerate(self.tokens) if t.head == -1]
        if n and len(roots) != 1:
            raise ValueError(f"a PromptTree needs exactly one root; got {len(roots)}")
        for i, t in enumerate(self.tokens):
            if not (-1 <= t.head < n) or t.head == i:
                raise ValueError(f"token {i} ({t.text!r}) has an invalid head {t.head}")
        # every token must reach the root (no cycles)
        for i in range(n):
            seen, j = set(), i
            while j != -1:
                if j in seen:
                    raise ValueError(f"the tree has a cycle through token {j} ({self.tokens[j].text!r})")
                seen.add(j)
                j = self.tokens[j].head

    @property
    def root(self) -> int | None:
        """Index of the root token, or None for an empty prompt."""
        for i, t in enumerate(self.tokens):
            if t.head == -1:
                return i
        return None

    def children(self, i: int) -> list[int]:
        return [j for j, t in enumerate(self.tokens) if t.head == i]


@attrs.frozen
class Phrase:
    """A group of tokens around one noun (docs/design.md 6.3).

    ``tokens`` are indices into the tree in text order; ``noun`` the centre noun's index;
    ``text`` the phrase without stopwords and lone punctuation; ``ancestor`` the index of
    the ancestor phrase in the phrase list (itself for the root phrase).
    """

    text: str
    noun: int
    noun_text: str
    tokens: tuple[int, ...] = attrs.field(converter=_indices)
    ancestor: int = 0


@attrs.frozen
class PhraseReport:
    """AQ-Map's verdict for one phrase. Scores are in [0, 1], higher = better aligned.

    ``defect`` is ``"noun"`` (noun unmatched: drawn on the ancestor's region),
    ``"adjective"`` (adjective unmatched: drawn on the noun's own region) or ``None``.
    """

    text: str
    noun: str
    ancestor: str
    phrase_score: float
    noun_score: float
    defect: str | None = None


def _phrase_reports(value: Iterable[PhraseReport]) -> tuple[PhraseReport, ...]:
    return tuple(value)


def _weighted(value: Iterable[tuple[str, float]]) -> tuple[tuple[str, float], ...]:
    return tuple((str(text), float(weight)) for text, weight in value)


@attrs.frozen
class AlignmentReport:
    """Per-phrase alignment findings for one image and prompt.

    ``emphasis`` lists ``(phrase text, weight)`` pairs that the refiner adds to the prompt
    conditioning (paper eq. 7: weight 0.1). ``defect_maps`` maps each defective phrase to the
    float32 ``(H, W)`` region in [0, 1] its defect was drawn on (1 = defect there), so a region
    detector can say which phrase made which part of the mask; it is left out of ``to_json``.
    """

    prompt: str
    prompt_score: float
    phrases: tuple[PhraseReport, ...] = attrs.field(converter=_phrase_reports)
    emphasis: tuple[tuple[str, float], ...] = attrs.field(converter=_weighted, factory=tuple)
    note: str = ""
    defect_maps: Mapping[str, np.ndarray] = attrs.field(
        factory=dict, converter=_frozen_mapping, eq=False, repr=False
    )

    def to_json(self) -> dict[str, Any]:
        return {
            "prompt": self.prompt,
            "prompt_score": self.prompt_score,
            "phrases": [attrs.asdict(p) for p in self.phrases],
            "emphasis": [list(e) for e in self.emphasis],
            "note": self.note,
        }
