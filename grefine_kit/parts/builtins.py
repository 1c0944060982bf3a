"""The built-in parts, registered through the same hooks a third-party plugin uses.

Factories are ``"module:attr"`` strings so that listing parts imports nothing heavy.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from importlib import resources
from typing import Any, NamedTuple

from grefine_kit.parts.hookspecs import Register, hookimpl
from grefine_kit.parts.roles import ALIGNMENT, PERCEPTUAL


class _Part(NamedTuple):
    """One built-in registration: ``register(name, target, summary=summary, **metadata)``."""

    name: str
    target: str
    summary: str
    metadata: Mapping[str, Any] = {}


def _register_all(register: Register, parts: Iterable[_Part]) -> None:
    for part in parts:
        register(part.name, part.target, summary=part.summary, **part.metadata)


_INDICATORS = (
    _Part(
        "pq-map",
        "grefine_kit.indicators.pq_map:PQMap",
        "perceptual quality map + score (CLIP Surgery, 4 quality factors, cask effect)",
    ),
    _Part(
        "aq-map",
        "grefine_kit.indicators.aq_map:AQMap",
        "alignment quality map + score from the prompt's phrases (needs a prompt)",
    ),
    _Part(
        "clip-surgery",
        "grefine_kit.indicators.clip_query:ClipSurgeryQuery",
        "text-query map: where is the prompt's text in the image (higher = more of it)",
    ),
    _Part(
        "piqe-map",
        "grefine_kit.indicators.piqe_map:PiqeMap",
        "weight-free local quality map: PIQE blocks + loss of detail (numpy, no download)",
    ),
    _Part(
        "defect-map",
        "grefine_kit.indicators.defect_map:DefectMap",
        "weight-free map of local noise, blur and JPEG blocking (one detector per kind)",
    ),
    _Part(
        "region-map",
        "grefine_kit.indicators.region_map:RegionMap",
        "the item's own region mask as the map (oracle arm of a planted-defect benchmark)",
    ),
)

_PARSERS = (
    _Part("spacy", "grefine_kit.parsers.spacy_parser:SpacyParser", "spaCy dependency parse (default)"),
    _Part("nltk", "grefine_kit.parsers.nltk_parser:NltkParser", "NLTK tagger + chunk grammar"),
    _Part("stanza", "grefine_kit.parsers.stanza_parser:StanzaParser", "Stanza dependency parse"),
    _Part(
        "rules",
        "grefine_kit.parsers.rule_parser:RuleParser",
        "dependency-free rule-based parse (minimal installs, smoke runs)",
    ),
)

# the one-map combiners are named after the indicator role whose map they use alone
_COMBINERS = (
    _Part(
        "g-refine",
        "grefine_kit.combiners.g_refine:GRefineCombiner",
        "(1 - P) + A_def, binarised, grown, feathered",
    ),
    _Part(PERCEPTUAL, "grefine_kit.combiners.g_refine:PerceptualCombiner", "perceptual map only (1 - P)"),
    _Part(ALIGNMENT, "grefine_kit.combiners.g_refine:AlignmentCombiner", "alignment defects only (A_def)"),
    _Part("soft", "grefine_kit.combiners.soft:SoftCombiner", "soft deficiency, no binarisation"),
)

_REGIONS = (
    _Part(
        "components",
        "grefine_kit.regions.components:ComponentRegions",
        "connected components of the mask, tagged with the defect that made each",
    ),
)

_STAGES = (
    _Part("inpaint", "grefine_kit.stages.diffusion:InpaintStage", "masked diffusers inpainting (stage 1)"),
    _Part("img2img", "grefine_kit.stages.diffusion:Img2ImgStage", "mild global diffusers img2img (stage 2)"),
    _Part(
        "restore",
        "grefine_kit.stages.restore:RestoreStage",
        "weight-free classical restoration (denoise / deblock / deblur, auto), either slot",
    ),
)


def _metric(
    name: str,
    target: str,
    summary: str,
    score_range: tuple[float, float],
    *,
    lower_better: bool = False,
    needs_prompt: bool | None = None,
    needs: tuple[str, ...] | None = None,
) -> _Part:
    """A metric's registration: ``lower_better``, ``score_range`` and ``needs_prompt`` as metadata
    so that ``grefine list metric`` shows them without building the part; ``needs`` says what a
    full-reference or mask metric reads per image (``MetricBase.needs``)."""
    metadata: dict[str, Any] = {"lower_better": lower_better, "score_range": score_range}
    if needs_prompt is not None:
        metadata["needs_prompt"] = needs_prompt
    if needs is not None:
        metadata["needs"] = needs
    return _Part(name, target, summary, metadata)


_REF = ("reference",)
_REF_REGION = ("reference", "region")
_FIDELITY = "grefine_kit.metrics.fidelity_parts:"
_METRICS = (
    _metric("pq-map", "grefine_kit.metrics.indicator:pq_map_metric",
            "PQ-Map's perceptual score p (options: pq-map's)", (0.0, 1.0), needs_prompt=False),
    _metric("aq-map", "grefine_kit.metrics.indicator:aq_map_metric",
            "AQ-Map's alignment score a (options: aq-map's)", (0.0, 1.0), needs_prompt=True),
    _metric("clipscore", "grefine_kit.metrics.clip_metrics:CLIPScore",
            "CLIPScore, 2.5*max(cos, 0) (Hessel et al.; OpenAI CLIP ViT-B/32)", (0.0, 2.5),
            needs_prompt=True),
    _metric("pickscore", "grefine_kit.metrics.pickscore:PickScore",
            "PickScore, logit_scale*cos (yuvalkirstain/PickScore_v1, transformers)", (-100.0, 100.0),
            needs_prompt=True),
    _metric("hpsv2", "grefine_kit.metrics.clip_metrics:HPSv2",
            "Human Preference Score v2.1 (open_clip ViT-H-14 + HPS checkpoint), cosine", (-1.0, 1.0),
            needs_prompt=True),
    _metric("piqe", "grefine_kit.metrics.piqe:PiqeMetric",
            "PIQE, weight-free blind quality (Venkatanath et al.), runs offline", (0.0, 100.0),
            lower_better=True, needs_prompt=False),
    _metric("indicator-score", "grefine_kit.metrics.indicator:IndicatorMetric",
            "any indicator's image score as a metric (default pq-map)", (0.0, 1.0)),
    _metric("psnr", _FIDELITY + "Psnr", "PSNR vs the reference, RGB 0-255, dB (capped at 100)", (0.0, 100.0),
            needs_prompt=False, needs=_REF),
    _metric("ssim", _FIDELITY + "Ssim",
            "SSIM vs the reference (Wang et al.'s reference code; luma, 11x11 Gaussian)", (-1.0, 1.0),
            needs_prompt=False, needs=_REF),
    _metric("psnr-region", _FIDELITY + "PsnrRegion", "PSNR inside the region", (0.0, 100.0),
            needs_prompt=False, needs=_REF_REGION),
    _metric("ssim-region", _FIDELITY + "SsimRegion", "SSIM map's mean inside the region", (-1.0, 1.0),
            needs_prompt=False, needs=_REF_REGION),
    _metric("psnr-rest", _FIDELITY + "PsnrRest", "PSNR outside the region", (0.0, 100.0),
            needs_prompt=False, needs=_REF_REGION),
    _metric("ssim-rest", _FIDELITY + "SsimRest", "SSIM map's mean outside the region", (-1.0, 1.0),
            needs_prompt=False, needs=_REF_REGION),
    _metric("ssim-unmasked", _FIDELITY + "SsimUnmasked",
            "SSIM vs the refiner's own input where its mask left pixels alone (harm; no reference)",
            (-1.0, 1.0), needs_prompt=False, needs=("input", "refiner_mask")),
    _metric("mask-iou", _FIDELITY + "MaskIou", "IoU of the refiner's mask and the region", (0.0, 1.0),
            needs_prompt=False, needs=("refiner_mask", "region")),
    _metric("seam", "grefine_kit.metrics.seam:Seam",
            "change of the colour step across the refiner mask's border vs its input (seams)", (0.0, 442.0),
            lower_better=True, needs_prompt=False, needs=("input", "refiner_mask")),
)  # fmt: skip


@hookimpl
def register_indicators(register: Register) -> None:
    _register_all(register, _INDICATORS)


@hookimpl
def register_parsers(register: Register) -> None:
    _register_all(register, _PARSERS)


@hookimpl
def register_combiners(register: Register) -> None:
    _register_all(register, _COMBINERS)


@hookimpl
def register_regions(register: Register) -> None:
    _register_all(register, _REGIONS)


@hookimpl
def register_stages(register: Register) -> None:
    _register_all(register, _STAGES)


@hookimpl
def register_metrics(register: Register) -> None:
    _register_all(register, _METRICS)


@hookimpl
def register_engines(register: Register) -> None:
    register("local", "grefine_kit.engines.local:LocalEngine", summary="every item in this process (default)")


@hookimpl
def register_recipes(register: Register) -> None:
    for item in sorted(resources.files("grefine_kit.recipes").iterdir(), key=lambda p: p.name):
        if item.name.endswith(".toml"):
            register(item.name[: -len(".toml")], item, summary=_first_comment(item.read_text("utf-8")))


def _first_comment(text: str) -> str:
    for line in text.splitlines():
        if line.startswith("#"):
            return line.lstrip("# ").strip()
    return ""
