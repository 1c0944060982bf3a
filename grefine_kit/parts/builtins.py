"""The built-in parts, registered through the same hooks a third-party plugin uses.

Factories are ``"module:attr"`` strings so that listing parts imports nothing heavy.
"""

from __future__ import annotations

from importlib import resources

from grefine_kit.parts.hookspecs import Register, hookimpl


@hookimpl
def register_indicators(register: Register) -> None:
    register(
        "pq-map",
        "grefine_kit.indicators.pq_map:PQMap",
        summary="perceptual quality map + score (CLIP Surgery, 4 quality factors, cask effect)",
    )
    register(
        "aq-map",
        "grefine_kit.indicators.aq_map:AQMap",
        summary="alignment quality map + score from the prompt's phrases (needs a prompt)",
    )
    register(
        "clip-surgery",
        "grefine_kit.indicators.clip_query:ClipSurgeryQuery",
        summary="text-query map: where is the prompt's text in the image (higher = more of it)",
    )
    register(
        "piqe-map",
        "grefine_kit.indicators.piqe_map:PiqeMap",
        summary="weight-free local quality map: PIQE blocks + loss of detail (numpy, no download)",
    )
    register(
        "defect-map",
        "grefine_kit.indicators.defect_map:DefectMap",
        summary="weight-free map of local noise, blur and JPEG blocking (one detector per kind)",
    )
    register(
        "region-map",
        "grefine_kit.indicators.region_map:RegionMap",
        summary="the item's own region mask as the map (oracle arm of a planted-defect benchmark)",
    )


@hookimpl
def register_parsers(register: Register) -> None:
    register(
        "spacy", "grefine_kit.parsers.spacy_parser:SpacyParser", summary="spaCy dependency parse (default)"
    )
    register("nltk", "grefine_kit.parsers.nltk_parser:NltkParser", summary="NLTK tagger + chunk grammar")
    register("stanza", "grefine_kit.parsers.stanza_parser:StanzaParser", summary="Stanza dependency parse")
    register(
        "rules",
        "grefine_kit.parsers.rule_parser:RuleParser",
        summary="dependency-free rule-based parse (minimal installs, smoke runs)",
    )


@hookimpl
def register_combiners(register: Register) -> None:
    register(
        "g-refine",
        "grefine_kit.combiners.g_refine:GRefineCombiner",
        summary="(1 - P) + A_def, binarised, grown, feathered",
    )
    register(
        "perceptual",
        "grefine_kit.combiners.g_refine:PerceptualCombiner",
        summary="perceptual map only (1 - P)",
    )
    register(
        "alignment",
        "grefine_kit.combiners.g_refine:AlignmentCombiner",
        summary="alignment defects only (A_def)",
    )
    register("soft", "grefine_kit.combiners.soft:SoftCombiner", summary="soft deficiency, no binarisation")


@hookimpl
def register_regions(register: Register) -> None:
    register(
        "components",
        "grefine_kit.regions.components:ComponentRegions",
        summary="connected components of the mask, tagged with the defect that made each",
    )


@hookimpl
def register_stages(register: Register) -> None:
    register(
        "inpaint",
        "grefine_kit.stages.diffusion:InpaintStage",
        summary="masked diffusers inpainting (stage 1)",
    )
    register(
        "img2img",
        "grefine_kit.stages.diffusion:Img2ImgStage",
        summary="mild global diffusers img2img (stage 2)",
    )
    register(
        "restore",
        "grefine_kit.stages.restore:RestoreStage",
        summary="weight-free classical restoration (denoise / deblock / deblur, auto), either slot",
    )


@hookimpl
def register_metrics(register: Register) -> None:
    # lower_better / score_range / needs_prompt: shown by `grefine list metric` without importing
    register(
        "pq-map",
        "grefine_kit.metrics.indicator:pq_map_metric",
        summary="PQ-Map's perceptual score p (options: pq-map's)",
        lower_better=False,
        score_range=(0.0, 1.0),
        needs_prompt=False,
    )
    register(
        "aq-map",
        "grefine_kit.metrics.indicator:aq_map_metric",
        summary="AQ-Map's alignment score a (options: aq-map's)",
        lower_better=False,
        score_range=(0.0, 1.0),
        needs_prompt=True,
    )
    register(
        "clipscore",
        "grefine_kit.metrics.clip_metrics:CLIPScore",
        summary="CLIPScore, 2.5*max(cos, 0) (Hessel et al.; OpenAI CLIP ViT-B/32)",
        lower_better=False,
        score_range=(0.0, 2.5),
        needs_prompt=True,
    )
    register(
        "pickscore",
        "grefine_kit.metrics.pickscore:PickScore",
        summary="PickScore, logit_scale*cos (yuvalkirstain/PickScore_v1, transformers)",
        lower_better=False,
        score_range=(-100.0, 100.0),
        needs_prompt=True,
    )
    register(
        "hpsv2",
        "grefine_kit.metrics.clip_metrics:HPSv2",
        summary="Human Preference Score v2.1 (open_clip ViT-H-14 + HPS checkpoint), cosine",
        lower_better=False,
        score_range=(-1.0, 1.0),
        needs_prompt=True,
    )
    register(
        "piqe",
        "grefine_kit.metrics.piqe:PiqeMetric",
        summary="PIQE, weight-free blind quality (Venkatanath et al.), runs offline",
        lower_better=True,
        score_range=(0.0, 100.0),
        needs_prompt=False,
    )
    register(
        "indicator-score",
        "grefine_kit.metrics.indicator:IndicatorMetric",
        summary="any indicator's image score as a metric (default pq-map)",
        lower_better=False,
        score_range=(0.0, 1.0),
    )
    # full-reference and mask metrics: `needs` says what each reads per image (MetricBase.needs)
    for name, factory, summary, score_range, needs in _FIDELITY_METRICS:
        register(
            name,
            f"grefine_kit.metrics.fidelity_parts:{factory}",
            summary=summary,
            lower_better=False,
            score_range=score_range,
            needs_prompt=False,
            needs=needs,
        )
    register(
        "seam",
        "grefine_kit.metrics.seam:Seam",
        summary="change of the colour step across the refiner mask's border vs its input (seams)",
        lower_better=True,
        score_range=(0.0, 442.0),
        needs_prompt=False,
        needs=("input", "refiner_mask"),
    )


_REF = ("reference",)
_REF_REGION = ("reference", "region")
_FIDELITY_METRICS = (
    ("psnr", "Psnr", "PSNR vs the reference, RGB 0-255, dB (capped at 100)", (0.0, 100.0), _REF),
    (
        "ssim",
        "Ssim",
        "SSIM vs the reference (Wang et al.'s reference code; luma, 11x11 Gaussian)",
        (-1.0, 1.0),
        _REF,
    ),
    ("psnr-region", "PsnrRegion", "PSNR inside the region", (0.0, 100.0), _REF_REGION),
    ("ssim-region", "SsimRegion", "SSIM map's mean inside the region", (-1.0, 1.0), _REF_REGION),
    ("psnr-rest", "PsnrRest", "PSNR outside the region", (0.0, 100.0), _REF_REGION),
    ("ssim-rest", "SsimRest", "SSIM map's mean outside the region", (-1.0, 1.0), _REF_REGION),
    (
        "ssim-unmasked",
        "SsimUnmasked",
        "SSIM vs the refiner's own input where its mask left pixels alone (harm; no reference)",
        (-1.0, 1.0),
        ("input", "refiner_mask"),
    ),
    (
        "mask-iou",
        "MaskIou",
        "IoU of the refiner's mask and the region",
        (0.0, 1.0),
        ("refiner_mask", "region"),
    ),
)


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
