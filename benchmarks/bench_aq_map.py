"""AQ-Map on the paper's Figure 5 prompt: batched (the indicator) vs a naive per-phrase loop.

The indicator encodes every distinct text (prompt, phrases, nouns, "") once, all templates in one
batched text forward, and the image once. The naive loop does what a direct transcription of the
paper does: for each phrase it re-encodes the image, and encodes "" and the phrase's and noun's
templates separately. Both give the same numbers (checked and printed).

Default: ViT-B/16 with RANDOM weights (``--model ViT-B-16 --weights ""``: the loader's spelling
for open_clip random init), so it runs offline; timings do not depend on the weights.

    python benchmarks/bench_aq_map.py [--templates short|none|imagenet] [--repeats 2]
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import numpy as np

FIG5 = "Mr. Beans wearing sun glasses with blue doctor suit and stripe tie"


def naive_scores(
    backbone: Any, image: Any, prompt: str, phrases: list[Any], templates: tuple[str, ...]
) -> list[float]:
    """Prompt score, then (phrase score, noun score) per phrase, with no sharing or caching at all."""
    import torch
    import torch.nn.functional as F

    from grefine_kit.indicators._clip_common import cosine_to_score
    from grefine_kit.models.surgery import clip_surgery_tokens, feature_surgery, similarity_maps

    model = backbone.model

    def ensemble(text: str) -> torch.Tensor:
        with torch.no_grad():
            feats = model.encode_text(backbone.tokenize([tpl.format(text) for tpl in templates])).float()
        return F.normalize(F.normalize(feats, dim=-1).mean(0), dim=-1)

    def image_tokens() -> torch.Tensor:
        with torch.no_grad():
            return clip_surgery_tokens(model, backbone.preprocess([image])).float()

    def score(tokens: torch.Tensor, t: torch.Tensor, r: torch.Tensor) -> float:
        cos = F.normalize(tokens[0, 0], dim=-1) @ F.normalize(t - r, dim=-1)
        return cosine_to_score(float(cos))

    tokens = image_tokens()
    out = [score(tokens, ensemble(" ".join(prompt.split())), ensemble(""))]
    size = (image.height, image.width)
    for ph in phrases:
        tokens = image_tokens()  # re-encoded per phrase
        r, t_ph, t_pn = ensemble(""), ensemble(ph.text), ensemble(ph.noun_text)
        out += [score(tokens, t_ph, r), score(tokens, t_pn, r)]
        sim = feature_surgery(tokens[:, 1:], t_pn[None], r)
        grid = backbone.grid_for(image)
        similarity_maps(sim, grid, [size])  # the noun map, as the indicator computes it
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="ViT-B-16")
    ap.add_argument("--weights", default="", help='"" = random init (offline)')
    ap.add_argument("--templates", default="short", choices=["short", "none", "imagenet"])
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--size", default="512x384", help="image WxH")
    args = ap.parse_args()

    import torch

    from grefine_kit.indicators.aq_map import AQMap
    from grefine_kit.models import BackboneSpec, get_backbone
    from grefine_kit.parsers import SpacyParser
    from grefine_kit.testing import sample_images

    w, h = (int(v) for v in args.size.split("x"))
    image = sample_images([(w, h)])[0]
    t0 = time.perf_counter()
    backbone = get_backbone(BackboneSpec(model=args.model, weights=args.weights, device="cpu"))
    built = time.perf_counter() - t0
    print(f"backbone {backbone.name}: built in {built:.1f} s; torch threads {torch.get_num_threads()}")
    aq = AQMap(
        model=args.model,
        weights=args.weights,
        device="cpu",
        templates=args.templates,
        parser_instance=SpacyParser(),
    )
    _tree, phrases = aq.analyse(FIG5)  # loads spaCy outside the timings
    n_texts = 2 + 2 * len(phrases)
    print(f"prompt: {FIG5!r}; {len(phrases)} phrases; templates: {args.templates} ({len(aq.template_list)})")

    batched, naive = [], []
    for _ in range(args.repeats):
        backbone.clear_caches()  # a cold call: no cached image or text features
        t0 = time.perf_counter()
        (qmap,) = aq.score([image], [FIG5])
        batched.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        ref = naive_scores(backbone, image, FIG5, phrases, aq.template_list)
        naive.append(time.perf_counter() - t0)
    rep = qmap.report
    got = [rep.prompt_score] + [s for p in rep.phrases for s in (p.phrase_score, p.noun_score)]
    diff = float(np.max(np.abs(np.asarray(got) - np.asarray(ref))))
    tb, tn = min(batched), min(naive)
    n_tpl = len(aq.template_list)
    print(f"batched AQ-Map : {tb:7.2f} s  (1 image forward, 1 text forward, {n_texts} texts x {n_tpl} tpl)")
    print(
        f"naive loop     : {tn:7.2f} s  ({1 + len(phrases)} image forwards, "
        f"{2 + 3 * len(phrases)} separate ensembles of {n_tpl} templates)"
    )
    print(f"speed-up       : {tn / tb:7.2f}x   (best of {args.repeats}; max |score difference| {diff:.2e})")


if __name__ == "__main__":
    main()
