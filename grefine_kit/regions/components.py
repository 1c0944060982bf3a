"""The built-in region detector (registry ``components``): connected components of the mask,
tagged with the defect that made each, filtered, reshaped and padded into crops."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import attrs
import numpy as np

from grefine_kit.checks import choice, integer, number
from grefine_kit.images.ops import at_size, dilate, feather
from grefine_kit.parts.base import PartBase
from grefine_kit.parts.roles import ALIGNMENT, PERCEPTUAL
from grefine_kit.regions.base import MERGE_MODES, Box, Region
from grefine_kit.types import AlignmentReport, Mask, QualityMap

__all__ = ["ComponentRegions", "label_components"]


def label_components(binary: np.ndarray) -> tuple[np.ndarray, int]:
    """8-connected components of a 0/1 ``(H, W)`` array: ``(labels, n)`` with int32 labels
    1..n in raster order of each component's first pixel, 0 = background.

    Runs of each row are united with the overlapping runs of the row above (union-find over
    runs), so the Python work grows with the number of runs, not of pixels.
    """
    on = np.asarray(binary) > 0
    h, w = on.shape
    parent: list[int] = []
    runs: list[tuple[int, int, int, int]] = []  # (row, start, end, run id)

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    prev: list[tuple[int, int, int]] = []
    for y in range(h):
        edges = np.flatnonzero(np.diff(np.concatenate(([0], on[y].view(np.int8), [0]))))
        row: list[tuple[int, int, int]] = []
        j = 0
        for s, e in zip(edges[::2].tolist(), edges[1::2].tolist(), strict=True):
            rid = len(parent)
            parent.append(rid)
            while j < len(prev) and prev[j][1] < s:  # prev run ends before this one can touch it
                j += 1
            k = j
            while k < len(prev) and prev[k][0] <= e:  # 8-connected: [ps, pe) touches [s - 1, e + 1)
                a, b = find(prev[k][2]), find(rid)
                if a != b:
                    parent[max(a, b)] = min(a, b)
                k += 1
            row.append((s, e, rid))
            runs.append((y, s, e, rid))
        prev = row
    labels = np.zeros((h, w), np.int32)
    names: dict[int, int] = {}
    for y, s, e, rid in runs:
        root = find(rid)
        labels[y, s:e] = names.setdefault(root, len(names) + 1)
    return labels, len(names)


def _bbox(binary: np.ndarray) -> Box:
    ys, xs = np.nonzero(binary)
    return int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1


def _component_boxes(labels: np.ndarray, n: int) -> list[Box]:
    """The bounding box of each label 1..n (index 0: unused), in one pass over the pixels."""
    ys, xs = np.nonzero(labels)
    lab = labels[ys, xs]
    h, w = labels.shape
    lo_x, lo_y = np.full(n + 1, w), np.full(n + 1, h)
    hi_x, hi_y = np.zeros(n + 1, np.int64), np.zeros(n + 1, np.int64)
    np.minimum.at(lo_x, lab, xs)
    np.minimum.at(lo_y, lab, ys)
    np.maximum.at(hi_x, lab, xs + 1)
    np.maximum.at(hi_y, lab, ys + 1)
    return [(int(a), int(b), int(c), int(d)) for a, b, c, d in zip(lo_x, lo_y, hi_x, hi_y, strict=True)]


def _union(boxes: Iterable[Box]) -> Box:
    ls, ts, rs, bs = zip(*boxes, strict=True)
    return min(ls), min(ts), max(rs), max(bs)


def _grow_box(box: Box, by: int, size: tuple[int, int]) -> Box:
    w, h = size
    left, top, right, bottom = box
    return max(0, left - by), max(0, top - by), min(w, right + by), min(h, bottom + by)


# --- the built-in detector ------------------------------------------------------------------


@attrs.define(kw_only=True)
class ComponentRegions(PartBase):
    """Connected components of the mask, each refined on its own crop (registry ``components``).

    Options (defaults follow ADetailer where our combiner does not already do the job):
        min_area / max_area: keep components covering at least / at most this fraction of the
            image (0.0 / 1.0: all; the combiner's ``min_area`` already drops specks).
        k_largest: keep only the k largest components (0 = all).
        dilate: grow (> 0) or shrink (< 0) each region's mask by this many pixels (0: the
            combiner already grew and feathered the mask).
        blur: a soft ramp this many pixels wide outside each region's mask (0: keep the
            combiner's feathering).
        padding: pixels of context around each region's box in its crop (32, ADetailer's default).
        merge: ``each`` (one crop per region) or ``single`` (one crop around all of them).
        max_upscale: the most stage 1 may enlarge a crop to reach the model's working area
            (2.0; 0 = no cap: a 64-px defect would be redrawn 16× larger at 1024).
        source_threshold: a component is tagged with the map (or phrase) whose mean deficiency
            over it is highest, if that is at least this much; else its source is ``mask``.
    """

    min_area: float = attrs.field(default=0.0, validator=number(0.0, 1.0))
    max_area: float = attrs.field(default=1.0, validator=number(0.0, 1.0))
    k_largest: int = attrs.field(default=0, validator=integer(0, 10_000))
    dilate: int = attrs.field(default=0, validator=integer(-512, 512))
    blur: int = attrs.field(default=0, validator=integer(0, 512))
    padding: int = attrs.field(default=32, validator=integer(0, 8192))
    merge: str = attrs.field(default="each", validator=choice(MERGE_MODES))
    max_upscale: float = attrs.field(default=2.0, validator=number(0.0, 64.0))
    source_threshold: float = attrs.field(default=0.1, validator=number(0.0, 1.0))

    def __attrs_post_init__(self) -> None:
        if self.min_area > self.max_area:
            raise ValueError(f"min_area ({self.min_area}) > max_area ({self.max_area})")

    def detect(
        self, mask: Mask, maps: Mapping[str, QualityMap], report: AlignmentReport | None
    ) -> list[Region]:
        h, w = mask.binary.shape
        labels, n = label_components(mask.binary)
        if n == 0:
            return []
        counts = np.bincount(labels.ravel(), minlength=n + 1)[1:]
        keep = [k + 1 for k in range(n) if self.min_area <= counts[k] / (h * w) <= self.max_area]
        if self.k_largest:
            keep = sorted(keep, key=lambda k: (-counts[k - 1], k))[: self.k_largest]
        keep.sort()  # raster order, not size order: the numbering (and so the seeds) is positional
        if not keep:
            return []
        evidence = _evidence(maps, report, (w, h))
        boxes = _component_boxes(labels, n)
        reach = abs(self.dilate) + self.blur + self.padding
        # work inside each component's window (its box plus everything that can grow it), so the
        # cost follows the components' size, not the image's, however many specks the mask has

        def window_of(box: Box) -> tuple[Box, np.ndarray]:
            win = _grow_box(box, reach, (w, h))
            return win, labels[win[1] : win[3], win[0] : win[2]]

        if self.merge == "single":
            tags = set()
            best = 0.0
            for k in keep:
                win, local = window_of(boxes[k])
                source, phrase, score = self._tag(local == k, win, evidence)
                tags.add((source, phrase))
                best = max(best, score)
            source, phrase = tags.pop() if len(tags) == 1 else ("mixed", None)
            union_box = _union(boxes[k] for k in keep)
            win, local = window_of(union_box)
            pairs = report.emphasis if report is not None else ()
            region = self._region(np.isin(local, keep), win, mask, (source, phrase, best), pairs)
            return [region] if region is not None else []
        out = []
        weights = dict(report.emphasis) if report is not None else {}
        for k in keep:
            win, local = window_of(boxes[k])
            component = local == k
            tag = self._tag(component, win, evidence)
            phrase = tag[1]
            # the phrase's own weight from the report (none when the report does not emphasise it)
            pairs = ((phrase, weights[phrase]),) if phrase is not None and phrase in weights else ()
            region = self._region(component, win, mask, tag, pairs)
            if region is not None:
                out.append(region)
        return out

    def _tag(
        self, component: np.ndarray, window: Box, evidence: list[tuple[str, str | None, np.ndarray]]
    ) -> tuple[str, str | None, float]:
        """``(source, phrase, score)``: the evidence with the highest mean deficiency over the
        component (its score); ``mask`` when none reaches ``source_threshold``."""
        wl, wt, wr, wb = window
        best: tuple[str, str | None] = ("mask", None)
        best_score = -1.0
        for source, phrase, deficiency in evidence:  # perceptual first: it wins ties
            score = float(deficiency[wt:wb, wl:wr][component].mean())
            if score > best_score:
                best, best_score = (source, phrase), score
        found = min(max(best_score, 0.0), 1.0)
        return (*best, found) if best_score >= self.source_threshold else ("mask", None, found)

    def _region(
        self,
        component: np.ndarray,
        window: Box,
        mask: Mask,
        tag: tuple[str, str | None, float],
        pairs: Sequence[tuple[str, float]],
    ) -> Region | None:
        """``component``: the region's pixels inside ``window`` (image coordinates), which
        reaches ``|dilate| + blur + padding`` px beyond them where the image allows."""
        h, w = mask.binary.shape
        wl, wt, wr, wb = window
        local = component.astype(np.float32)
        if self.dilate > 0:
            base = dilate(local, self.dilate)
        elif self.dilate < 0:
            base = 1.0 - dilate(1.0 - local, -self.dilate)
        else:
            base = local
        if not base.any():
            return None  # eroded away
        # without reshaping, the combiner's own feathered weights on this component
        soft = mask.soft[wt:wb, wl:wr] * base if self.dilate == 0 else base
        if self.blur:
            soft = np.maximum(soft, feather(base, self.blur))
        binary = (soft > 0).astype(np.float32)
        bl, bt, br, bb = _bbox(binary)
        box = (bl + wl, bt + wt, br + wl, bb + wt)
        crop = _grow_box(box, self.padding, (w, h))
        cl, ct, cr, cb = (crop[0] - wl, crop[1] - wt, crop[2] - wl, crop[3] - wt)
        local_mask = Mask(binary=binary[ct:cb, cl:cr], soft=np.clip(soft[ct:cb, cl:cr], 0.0, 1.0))
        return Region(
            box=box,
            crop=crop,
            mask=local_mask,
            area=float(binary.sum()) / (h * w),
            source=tag[0],
            phrase=tag[1],
            emphasis=tuple(pairs),
            max_upscale=self.max_upscale,
            label=tag[0],
            score=tag[2],
        )


def _evidence(
    maps: Mapping[str, QualityMap], report: AlignmentReport | None, size: tuple[int, int]
) -> list[tuple[str, str | None, np.ndarray]]:
    """``(source, phrase, deficiency map)`` candidates: 1 − P, then each defective phrase's map."""
    out: list[tuple[str, str | None, np.ndarray]] = []
    perceptual = maps.get(PERCEPTUAL)
    if perceptual is not None:
        out.append((PERCEPTUAL, None, 1.0 - at_size(perceptual, size)))
    if report is not None and report.defect_maps:
        w, h = size
        for phrase, region in report.defect_maps.items():
            if region.shape != (h, w):  # resized like the combiner resizes maps
                region = at_size(QualityMap(map=np.clip(region, 0, 1), score=0.0), size)
            arr = region
            out.append((ALIGNMENT, phrase, np.asarray(arr, np.float32)))
    elif ALIGNMENT in maps:  # an alignment map without a report: no phrase to name
        out.append((ALIGNMENT, None, 1.0 - at_size(maps[ALIGNMENT], size)))
    return out
