"""AQ-Map: alignment quality map and score from the prompt's phrases (docs/design.md 6.3, paper 3.2).

1. The prompt is parsed (a ``parser`` part) and split into noun phrases with ancestors
   (``grefine_kit.parsers.tree.extract_phrases``, Algorithm 1).
2. Every distinct text (the prompt, each phrase, each noun, and the redundant ``""``) is encoded
   once with a prompt ensemble, all in one batched text forward; the image once, with CLIP Surgery.
3. Per text: score ``sigmoid(slope * cos(CLS, t - r))`` (``r`` = the ensemble of ``""``; other
   score scales under ``score_scale``) and map = min-max of the surgery patch similarities,
   upsampled to the image (1 = where the text is).
4. Defects: noun unmatched (``a_pn[j] < a_bound``) -> region = the ancestor phrase's noun map;
   adjective unmatched (``a_ph[j] < a_pn[j] - adjective_margin``) -> region = the noun's own map.
   ``A_def`` is the pixel-wise max of the defect regions (0 where nothing is wrong); the returned
   map is ``A = 1 - A_def`` (1 = good). Defective phrases are emphasised with weight 0.1.
5. Score ``a = s(image, prompt) * prod_j min(a_ph[j] / beta, 1)`` (cask effect).

The decision logic (steps 4-5) lives in ``alignment_rules``: pure functions over plain numbers so it can
be tested and reused without a model: ``classify_defects``, ``defect_map``, ``cask_score``,
``decide_alignment``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

import attrs
import numpy as np

from grefine_kit.checks import unit
from grefine_kit.errors import UserError
from grefine_kit.indicators._clip_common import (
    IMAGENET_TEMPLATES,
    ClipIndicator,
    cosine_to_score,
)
from grefine_kit.indicators.alignment_rules import (
    DEFAULT_A_BOUND,
    DEFAULT_BETA,
    DEFAULT_EMPHASIS,
    DEFECT_CASES,
    DEFECT_RULES,
    AlignmentDecision,
    RuleOptions,
    cask_score,
    classify_defects,
    decide_alignment,
    defect_map,
)
from grefine_kit.parsers.base import Parser
from grefine_kit.parsers.tree import ANCESTOR_RULES
from grefine_kit.parts.base import Missing
from grefine_kit.parts.roles import ALIGNMENT
from grefine_kit.types import Phrase, QualityMap

if TYPE_CHECKING:
    import torch
    from PIL import Image
    from spacy.language import Language

    from grefine_kit.models.backbone import SurgeryCLIP
    from grefine_kit.types import PromptTree

__all__ = [
    "DEFAULT_A_BOUND",
    "DEFAULT_BETA",
    "SCORE_SCALES",
    "TEMPLATE_SETS",
    "AQMap",
    "AlignmentDecision",
    "cask_score",
    "classify_defects",
    "decide_alignment",
    "defect_map",
]

#: named prompt ensembles: "imagenet" = OpenAI CLIP's 80 ImageNet templates (the reference uses
#: these plus 5 scene templates); "short" = the 7-template subset OpenAI's notebook found best;
#: "none" = the bare text.
TEMPLATE_SETS: dict[str, tuple[str, ...]] = {
    "imagenet": IMAGENET_TEMPLATES,
    "short": (
        "itap of a {}.", "a bad photo of the {}.", "a origami {}.", "a photo of the large {}.",
        "a {} in a video game.", "art of the {}.", "a photo of the small {}.",
    ),
    "none": ("{}",),
}  # fmt: skip

#: how the CLS-to-text similarity fed to ``sigmoid(slope * .)`` is scaled (docs/indicators/aq-map.md)
SCORE_SCALES = ("cosine", "reference", "raw")
#: how the prompt becomes phrases: "ours" (noun-centred grouping of the dependency tree,
#: ``extract_phrases``) or "reference" (the released script's noun-chunk partition and parents)
PARSER_MODES = ("ours", "reference")

# One text forward holds at most this many sequences (texts x templates); more go in chunks.
_MAX_TEXT_ROWS = 4096


def _squash(text: str) -> str:
    """Whitespace runs -> one space, stripped: a blank prompt encodes exactly like ""."""
    return " ".join(text.split())


def _to_options(value: Mapping[str, Any] | None) -> dict[str, Any]:
    return dict(value or {})


def _to_templates(value: str | Sequence[str]) -> str | tuple[str, ...]:
    return value if isinstance(value, str) else tuple(value)


def _check_templates(_inst: Any, attribute: attrs.Attribute[Any], value: str | tuple[str, ...]) -> None:
    if isinstance(value, str):
        if value not in TEMPLATE_SETS:
            raise ValueError(
                f"{attribute.name} must be one of {sorted(TEMPLATE_SETS)} or a list of templates"
            )
        return
    if not value:
        raise ValueError(f"{attribute.name} must not be empty")
    for tpl in value:
        if not isinstance(tpl, str) or tpl.count("{}") != 1:
            raise ValueError(f"each template must be a string with exactly one '{{}}'; got {tpl!r}")
        try:
            tpl.format("x")
        except (IndexError, KeyError, ValueError) as exc:
            raise ValueError(f"template {tpl!r} cannot be filled: {exc}") from exc


def _beta(_inst: Any, attribute: attrs.Attribute[Any], value: float) -> None:
    if not 0.0 < value <= 1.0:
        raise ValueError(f"{attribute.name} must be in (0, 1]; got {value}")


def _check_parser_instance(_inst: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    if value is not None and not isinstance(value, Parser):
        raise ValueError(
            f"{attribute.name} must be a parser object with parse(prompt) (Python only), or None"
        )


@attrs.define(kw_only=True)
class AQMap(ClipIndicator):
    """Alignment quality indicator (``aq-map``): map and score in [0, 1], 1 = well aligned.

    Options (recipe keys): ``model``, ``weights``, ``device``, ``dtype`` (the CLIP backbone);
    ``parser`` (registry name) and ``parser_options``; ``templates`` (``"imagenet"``, ``"short"``,
    ``"none"`` or a list of templates with one ``{}``); ``a_bound``, ``beta``,
    ``adjective_margin``, ``emphasis_weight``, ``score_slope``, ``score_scale``;
    ``interpolation``, ``pos_embed_interpolation``, ``native_size``, ``surgery_depth``,
    ``batch_size``; ``keep_maps`` (put the per-phrase and per-noun maps in ``details``);
    ``parser_mode`` (``"ours"`` or ``"reference"``), ``ancestor_rule`` (``"phrase-head"`` or
    ``"noun-ancestor"``, Algorithm 1 as printed); ``defect_rule`` (``"union"`` or eq. 6's
    ``"product"``), ``defect_cases`` (``"text"`` or eq. 6 as ``"printed"``); ``reference_compat``
    (the released ``AQ-Map.py`` step by step, ``grefine_kit.indicators.aq_reference``).
    ``parser_instance`` (Python only) injects a parser object. See docs/indicators/aq-map.md.
    """

    needs_prompt: ClassVar[bool] = True
    name: ClassVar[str] = "aq-map"
    #: what ``grefine evaluate`` correlates it with (the alignment MOS)
    quality_kind: ClassVar[str] = ALIGNMENT
    #: its maps carry the AlignmentReport (emphasis, per-phrase defects): the refiner stores it
    writes_report: ClassVar[bool] = True

    parser: str = attrs.field(
        default="spacy", validator=[attrs.validators.instance_of(str), attrs.validators.min_len(1)]
    )
    parser_options: Mapping[str, Any] = attrs.field(
        factory=dict, converter=_to_options, validator=attrs.validators.instance_of(dict)
    )
    templates: str | tuple[str, ...] = attrs.field(
        default="imagenet", converter=_to_templates, validator=_check_templates
    )
    a_bound: float = attrs.field(default=DEFAULT_A_BOUND, converter=float, validator=unit)
    beta: float = attrs.field(default=DEFAULT_BETA, converter=float, validator=_beta)
    adjective_margin: float = attrs.field(default=0.0, converter=float, validator=unit)
    emphasis_weight: float = attrs.field(default=DEFAULT_EMPHASIS, converter=float, validator=unit)
    score_slope: float = attrs.field(default=10.0, converter=float, validator=attrs.validators.gt(0.0))
    score_scale: str = attrs.field(default="cosine", validator=attrs.validators.in_(SCORE_SCALES))
    keep_maps: bool = attrs.field(default=False, validator=attrs.validators.instance_of(bool))
    parser_mode: str = attrs.field(default="ours", validator=attrs.validators.in_(PARSER_MODES))
    ancestor_rule: str = attrs.field(default="phrase-head", validator=attrs.validators.in_(ANCESTOR_RULES))
    reference_compat: bool = attrs.field(default=False, validator=attrs.validators.instance_of(bool))
    defect_rule: str = attrs.field(default="union", validator=attrs.validators.in_(DEFECT_RULES))
    defect_cases: str = attrs.field(default="text", validator=attrs.validators.in_(DEFECT_CASES))
    parser_instance: Parser | None = attrs.field(
        default=None, repr=False, eq=False, validator=_check_parser_instance
    )

    _parser_obj: Parser | None = attrs.field(default=None, init=False, repr=False, eq=False)

    def __attrs_post_init__(self) -> None:
        if (self.reference_compat or self.parser_mode == "reference") and self.parser != "spacy":
            raise ValueError(
                "aq-map: parser_mode = 'reference' and reference_compat need parser = 'spacy' "
                f"(the released script parses with spaCy); got parser = {self.parser!r}"
            )

    def spacy_pipeline(self) -> Language:
        """The spaCy pipeline of the ``spacy`` parser in use (parser mode ``reference``)."""
        from grefine_kit.parsers.spacy_parser import SpacyParser

        parser = self.get_parser()
        if not isinstance(parser, SpacyParser):
            raise UserError("aq-map: parser mode 'reference' needs the spaCy parser (parser = 'spacy')")
        return parser.load()

    @property
    def template_list(self) -> tuple[str, ...]:
        """The prompt-ensemble templates in use."""
        return TEMPLATE_SETS[self.templates] if isinstance(self.templates, str) else self.templates

    def get_parser(self) -> Parser:
        """The injected ``parser_instance``, else the registered parser ``parser`` (built once)."""
        if self.parser_instance is not None:
            return self.parser_instance
        if self._parser_obj is None:
            from grefine_kit.parsers.base import Parser
            from grefine_kit.parts.registry import get_registry

            registry = get_registry()
            self._parser_obj = registry.create_as("parser", self.parser, self.parser_options, Parser)
        return self._parser_obj

    def preflight(self) -> list[Missing]:
        """The CLIP checks, and what the built-in parser named by ``parser`` lacks here."""
        from grefine_kit.parsers.availability import check_parser

        return super().preflight() + check_parser(self.parser, self.parser_options)

    def fetch_weights(self) -> list[str]:
        """Download the CLIP backbone, then check that the parser's model is installed: NLP
        models are not on the Hugging Face hub, so a missing one raises with its install hint."""
        lines = super().fetch_weights()
        self.get_parser().parse("a red cube on a table")
        return [*lines, f"parser {self.parser}: ready"]

    def load(self) -> SurgeryCLIP:
        """Build the parser and load the backbone (shared cache); called on first ``score``."""
        self.get_parser()
        return self.backbone()

    def rule_options(self) -> RuleOptions:
        """The rule keywords of :func:`decide_alignment` as this indicator sets them."""
        return RuleOptions(
            a_bound=self.a_bound,
            beta=self.beta,
            adjective_margin=self.adjective_margin,
            emphasis_weight=self.emphasis_weight,
            defect_rule=self.defect_rule,
            defect_cases=self.defect_cases,
        )

    def analyse(self, prompt: str) -> tuple[PromptTree, list[Phrase]]:
        """Parse ``prompt`` and group it into phrases with ancestors (no model needed): our
        grouping with ``ancestor_rule``, or under ``parser_mode = "reference"`` the released
        script's noun-chunk parts (``grefine_kit.parsers.reference``)."""
        from grefine_kit.parsers.tree import extract_phrases

        tree = self.get_parser().parse(prompt)
        if self.parser_mode == "reference":
            from grefine_kit.indicators.aq_reference import reference_phrases
            from grefine_kit.parsers.reference import analyse_reference

            return tree, reference_phrases(analyse_reference(self.spacy_pipeline(), prompt), tree)
        return tree, extract_phrases(tree, ancestor_rule=self.ancestor_rule)

    def encode_texts(self, backbone: SurgeryCLIP, texts: Sequence[str]) -> torch.Tensor:
        """Ensemble features ``[N, D]`` of distinct ``texts``: one batched forward (chunked only
        beyond ``_MAX_TEXT_ROWS`` texts x templates)."""
        import torch

        templates = self.template_list
        per = max(1, _MAX_TEXT_ROWS // len(templates))
        chunks = [
            backbone.encode_text_ensemble(texts[i : i + per], templates) for i in range(0, len(texts), per)
        ]
        return torch.cat(chunks) if chunks else torch.empty(0, backbone.embed_dim)

    def _note(self, backbone: SurgeryCLIP, prompt: str, phrases: Sequence[Phrase]) -> str:
        notes = []
        if not prompt.strip():
            notes.append("empty prompt: nothing to align (score = s(image, '') = 0.5)")
        elif not phrases:
            notes.append("no noun in the prompt: score is the whole-prompt score only, map is all 1")
        encode = getattr(backbone.tokenizer, "encode", None)
        if callable(encode) and prompt.strip():
            longest = max(len(encode(t.format(prompt))) for t in self.template_list) + 2  # + SOT, EOT
            if longest > backbone.context_length:
                notes.append(
                    f"prompt is {longest} CLIP tokens in its template (> {backbone.context_length}): "
                    "the whole-prompt score sees its start only; phrases are scored separately"
                )
        return "; ".join(notes)

    def _cls_similarity(self, tokens: torch.Tensor, direction: torch.Tensor) -> torch.Tensor:
        """``[b, T]`` CLS-row similarity with each ``t - r`` (``direction [T, D]``), per ``score_scale``:

        - ``"cosine"``: ``cos(CLS, t - r)`` (our reading of the paper; scale-free);
        - ``"reference"``: the image tokens divided by their norm over the *token* axis (as the
          released reference code, Q-Refine ``PQ-Map.py`` and CLIP Surgery's demo, normalise them),
          dotted with the unnormalised ``t - r`` (CLIP Surgery's ``clip_feature_surgery``);
        - ``"raw"``: the projected CLS token dotted with the unnormalised ``t - r``.
        """
        import torch.nn.functional as F

        if self.score_scale == "cosine":
            return F.normalize(tokens[:, 0], dim=-1) @ F.normalize(direction, dim=-1).T
        if self.score_scale == "reference":
            return (tokens / tokens.norm(dim=1, keepdim=True))[:, 0] @ direction.T
        return tokens[:, 0] @ direction.T

    def score(self, images: Sequence[Image.Image], prompts: Sequence[str] | None = None) -> list[QualityMap]:
        """One QualityMap per image and prompt; ``report`` is the ``AlignmentReport``."""
        from grefine_kit.models.surgery import feature_surgery, similarity_maps

        if not images:
            return []
        if isinstance(prompts, str):
            raise UserError("aq-map: prompts must be a list of strings, one per image (not one string)")
        if prompts is None or len(prompts) != len(images):
            raise UserError(
                f"aq-map needs one prompt per image; got {0 if prompts is None else len(prompts)} "
                f"prompts for {len(images)} images"
            )
        prompts = [str(p) for p in prompts]
        if self.reference_compat:
            from grefine_kit.indicators.aq_reference import score_reference

            return score_reference(self, images, prompts)
        # parse first: a missing parser model fails before any CLIP weights are loaded
        parsed = {p: self.analyse(p) for p in dict.fromkeys(prompts)}
        backbone = self.load()
        texts: list[str] = [""]
        for p, (_tree, phrases) in parsed.items():
            texts += [_squash(p), *(ph.text for ph in phrases), *(ph.noun_text for ph in phrases)]
        texts = list(dict.fromkeys(texts))
        column = {t: k for k, t in enumerate(texts)}
        feats = self.encode_texts(backbone, texts)
        redundant = feats[column[""]]
        notes = {p: self._note(backbone, p, phrases) for p, (_tree, phrases) in parsed.items()}
        direction = feats - redundant.reshape(1, -1)  # a zero row for "" itself

        results: list[QualityMap | None] = [None] * len(images)
        groups = self.encode_groups(backbone, images)
        for indices, tokens, grid in groups:
            sim_cls = self._cls_similarity(tokens, direction)  # [b, T]
            for j, i in enumerate(indices):
                prompt = prompts[i]
                tree, phrases = parsed[prompt]
                size = (images[i].height, images[i].width)
                ph_cols = [column[ph.text] for ph in phrases]
                pn_cols = [column[ph.noun_text] for ph in phrases]
                maps_needed = list(dict.fromkeys(pn_cols + (ph_cols if self.keep_maps else [])))
                if maps_needed:
                    sim = feature_surgery(tokens[j : j + 1, 1:], feats[maps_needed], redundant)
                    maps = similarity_maps(sim, grid, [size], self.interpolation)[0]
                else:
                    maps = np.zeros((0, *size), np.float32)
                slot = {c: k for k, c in enumerate(maps_needed)}

                score_of = [cosine_to_score(c, self.score_slope) for c in sim_cls[j].tolist()]
                decision = decide_alignment(
                    prompt,
                    phrases,
                    [score_of[c] for c in ph_cols],
                    [score_of[c] for c in pn_cols],
                    [maps[slot[c]] for c in pn_cols],
                    score_of[column[_squash(prompt)]],
                    size,
                    note=notes[prompt],
                    **self.rule_options(),
                )
                details: dict[str, Any] = {
                    "parser": tree.parser,
                    "defect_area": float(decision.defect_map.mean()),
                    "grid": grid,
                    "backbone": backbone.name,
                    "templates": len(self.template_list),
                    "score_scale": self.score_scale,
                }
                if self.keep_maps:
                    details["noun_maps"] = np.stack([maps[slot[c]] for c in pn_cols]) if phrases else maps
                    details["phrase_maps"] = np.stack([maps[slot[c]] for c in ph_cols]) if phrases else maps
                results[i] = QualityMap(
                    map=decision.map,
                    score=decision.score,
                    indicator=self.name,
                    details=details,
                    report=decision.report,
                )
        return [r for r in results if r is not None]
