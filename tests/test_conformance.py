"""Every built-in part passes the same conformance check a third-party plugin must pass."""

from __future__ import annotations

import pytest

from grefine_kit.parsers.spacy_parser import spacy_model_installed
from grefine_kit.parts.registry import KINDS, Registry
from grefine_kit.testing import TINY_BACKBONE, check_part

TINY_STAGE = {"model": "tiny", "device": "cpu", "dtype": "float32"}

HAS_SPACY_MODEL = spacy_model_installed()

#: (kind, name, options) for every built-in; parts whose models cannot exist offline are listed in SKIPPED
CASES = [
    ("indicator", "pq-map", TINY_BACKBONE),
    ("indicator", "aq-map", {**TINY_BACKBONE, "parser": "rules", "templates": "none"}),
    ("indicator", "clip-surgery", {**TINY_BACKBONE, "ensemble": False}),
    ("indicator", "piqe-map", {}),
    ("indicator", "defect-map", {}),
    ("parser", "rules", {}),
    pytest.param(
        "parser", "spacy", {}, marks=pytest.mark.skipif(not HAS_SPACY_MODEL, reason="no spaCy English model")
    ),
    ("combiner", "g-refine", {}),
    ("combiner", "perceptual", {}),
    ("combiner", "alignment", {}),
    ("combiner", "soft", {}),
    ("regions", "components", {}),
    ("regions", "components", {"merge": "single", "dilate": 2, "blur": 3}),
    ("stage", "inpaint", TINY_STAGE),
    ("stage", "img2img", TINY_STAGE),
    ("stage", "restore", {}),
    ("metric", "indicator-score", {"options": TINY_BACKBONE}),
    ("metric", "pq-map", TINY_BACKBONE),
    ("metric", "aq-map", {**TINY_BACKBONE, "parser": "rules", "templates": "none"}),
    ("metric", "clipscore", TINY_BACKBONE),
    ("metric", "piqe", {}),
    *[
        ("metric", name, {})
        for name in (
            "psnr",
            "ssim",
            "psnr-region",
            "ssim-region",
            "psnr-rest",
            "ssim-rest",
            "ssim-unmasked",
            "mask-iou",
            "seam",
        )
    ],
    ("metric", "ssim", {"convention": "skimage"}),
    ("engine", "local", {}),
    *[
        ("recipe", name, {})
        for name in (
            "demo",
            "g-refine",
            "g-refine-perceptual",
            "g-refine-alignment",
            "g-refine-stage1",
            "g-refine-regions",
            "g-refine-reference",
            "g-refine-paper",
            "img2img-baseline",
            "restore",
            "restore-global",
            "tiny",
        )
    ],
]
#: need downloaded models (NLTK tagger data, Stanza models): their own tests cover them with stand-ins
#: pickscore / hpsv2 default to real hub weights: tests/test_metrics.py runs check_metric on tiny
#: models of the same libraries loaded back through the same loaders
#: region-map reads each item's region mask, which the generic check cannot give it: tests/test_restore.py
SKIPPED = {
    ("parser", "nltk"),
    ("parser", "stanza"),
    ("metric", "pickscore"),
    ("metric", "hpsv2"),
    ("indicator", "region-map"),
}


@pytest.mark.parametrize(("kind", "name", "options"), CASES)
def test_builtin_part_conforms(kind: str, name: str, options: dict):
    check_part(kind, name, **options)


def test_every_builtin_part_is_checked():
    registry = Registry.from_plugins(entry_points=False)
    builtins = {(kind, name) for kind in KINDS for name in registry.names(kind)}
    covered = {(c.values[0], c.values[1]) if hasattr(c, "values") else (c[0], c[1]) for c in CASES}
    assert builtins - covered == SKIPPED
