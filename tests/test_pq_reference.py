"""PQ-Map against the public reference script (Q-Future/Q-Refine ``PQ-Map.py``), step by step.

Random ViT-B/16-size weights (open_clip ``ViT-B-16-quickgelu``, no pretrained tag) and the
bundled learned prompts. The recomputation below is written from the reference's steps and uses
only the open_clip modules, none of the toolkit's surgery or prompt code:

1. resize to 224 x 224 (bicubic, no centre crop), OpenAI mean/std;
2. the CLIP Surgery ViT: last 6 blocks dual path (original q-k attention + MLP; new path v-v
   attention only, reading ln_1 of the original path), CLS from the original path, ln_post and
   the projection on every token;
3. per prompt file: ``[prefix | ctx[:8] | suffix[:3] | ctx[8:] | suffix[3:]]`` + positional
   embedding through the text transformer, ln_final, token 20, text projection; no normalisation;
4. image tokens divided by their norm over the *token* axis, dot products with the two texts;
5. score: softmax of the CLS row over the pair (positive first), times the cask product of the
   other three factors (thresholds 0.935, 0.892*0.6, 0.826*0.8, or all 0.935 = the reference bug);
6. map: the overall factor's positive-side patch similarities, min-max, bilinear to the image.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from grefine_kit.indicators.learned_prompts import resolve_prompt_checkpoints
from grefine_kit.indicators.pq_map import PQMap
from grefine_kit.recipes.recipe import Recipe

VIT_B16 = {"model": "ViT-B-16-quickgelu", "weights": "random", "device": "cpu"}
MEAN = (0.48145466, 0.4578275, 0.40821073)
STD = (0.26862954, 0.26130258, 0.27577711)
FILES = ("PQ-overall.pth", "PQ-technical.pth", "PQ-rational.pth", "PQ-natural.pth")


@pytest.fixture(scope="module")
def reference_pq() -> PQMap:
    """One random ViT-B/16 shared by every test here (the backbone cache holds it)."""
    pq = PQMap(**VIT_B16, prompt_checkpoints="g-refine", reference_compat=True)
    pq.load()
    return pq


@pytest.fixture(scope="module")
def image() -> Image.Image:
    """A non-square RGB test picture (W 300 x H 200) with structure at several scales."""
    rng = np.random.default_rng(3)
    y, x = np.mgrid[0:200, 0:300]
    base = np.stack([x / 300.0, y / 200.0, 0.5 + 0.5 * np.sin(x / 17.0 + y / 23.0)], axis=-1)
    pixels = np.clip(base + 0.1 * rng.standard_normal(base.shape), 0, 1)
    return Image.fromarray((pixels * 255).astype(np.uint8))


def _attention_heads(attn: torch.nn.MultiheadAttention, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(original q-k path, v-v path) outputs after out_proj, computed by hand; ``h`` is ``[B, L, W]``."""
    b, n, width = h.shape
    heads = attn.num_heads
    qkv = F.linear(h, attn.in_proj_weight, attn.in_proj_bias).reshape(b, n, 3, heads, width // heads)
    q, k, v = qkv.permute(2, 0, 3, 1, 4)  # each [B, heads, L, d]
    scale = (width // heads) ** -0.5
    ori = ((q @ k.transpose(-2, -1)) * scale).softmax(-1) @ v
    new = ((v @ v.transpose(-2, -1)) * scale).softmax(-1) @ v

    def out(t: torch.Tensor) -> torch.Tensor:
        return attn.out_proj(t.transpose(1, 2).reshape(b, n, width))

    return out(ori), out(new)


def _reference_image_tokens(model, image: Image.Image) -> torch.Tensor:
    arr = np.asarray(image.convert("RGB").resize((224, 224), Image.Resampling.BICUBIC), dtype=np.float32)
    x = torch.from_numpy(arr / 255.0).permute(2, 0, 1)[None]
    x = (x - torch.tensor(MEAN).view(1, 3, 1, 1)) / torch.tensor(STD).view(1, 3, 1, 1)
    visual = model.visual
    x = visual.conv1(x).flatten(2).transpose(1, 2)
    x = torch.cat([visual.class_embedding.view(1, 1, -1).expand(x.shape[0], -1, -1), x], dim=1)
    x = visual.ln_pre(x + visual.positional_embedding)
    blocks = list(visual.transformer.resblocks)
    x_new = None
    for i, blk in enumerate(blocks):
        ori_res, new_res = _attention_heads(blk.attn, blk.ln_1(x))
        if i >= len(blocks) - 6:
            x_new = (x if x_new is None else x_new) + new_res  # the new path: attention only
        x = x + ori_res
        x = x + blk.mlp(blk.ln_2(x))
    tokens = torch.cat([x[:, :1], x_new[:, 1:]], dim=1)
    return visual.ln_post(tokens) @ visual.proj  # [1, 197, 512]


def _reference_text_features(model, path) -> torch.Tensor:
    params = torch.load(path, map_location="cpu", weights_only=True)["params"]
    ctx, prefix, suffix = (params[f"prompt_learner.{k}"] for k in ("ctx", "token_prefix", "token_suffix"))
    emb = torch.cat([prefix, ctx[:, :8], suffix[:, :3], ctx[:, 8:], suffix[:, 3:]], dim=1)
    x = emb + model.positional_embedding
    x = model.transformer(x, attn_mask=model.attn_mask)
    x = model.ln_final(x)
    return x[torch.arange(2), torch.tensor([20, 20])] @ model.text_projection  # [2, 512], raw


@pytest.fixture(scope="module")
def reference_features(reference_pq, image) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """The reference's raw text features per file and similarities ``[1, 197, 2]`` per factor."""
    model = reference_pq.backbone().model
    folder = resolve_prompt_checkpoints("g-refine")[0].parent
    with torch.no_grad():
        tokens = _reference_image_tokens(model, image)
        tokens = tokens / tokens.norm(dim=1, keepdim=True)  # over the token axis
        texts = [_reference_text_features(model, folder / f) for f in FILES]
    return texts, [tokens @ t.T for t in texts]


def _reference(sims: list[torch.Tensor], image: Image.Image, alpha_bug: bool) -> tuple[float, np.ndarray]:
    probs = [float(torch.softmax(s[0, 0], dim=0)[0]) for s in sims]
    bounds = (0.935, 0.935, 0.935) if alpha_bug else (0.935, 0.892 * 0.6, 0.826 * 0.8)
    score = probs[0]
    for p, b in zip(probs[1:], bounds, strict=True):
        score *= min(p / b, 1.0)
    sm = sims[0][:, 1:, 0]
    sm = (sm - sm.min(1, keepdim=True)[0]) / (sm.max(1, keepdim=True)[0] - sm.min(1, keepdim=True)[0])
    sm = F.interpolate(sm.reshape(1, 1, 14, 14), (image.height, image.width), mode="bilinear")
    return score, sm[0, 0].numpy()


@pytest.mark.parametrize("alpha_bug", [False, True])
def test_reference_mode_equals_the_reference_script(reference_features, image, alpha_bug):
    pq = PQMap(**VIT_B16, prompt_checkpoints="g-refine", reference_compat=True, reference_alpha_bug=alpha_bug)
    (result,) = pq.score([image])
    score, pmap = _reference(reference_features[1], image, alpha_bug)
    assert result.map.shape == (200, 300) == pmap.shape  # (H, W); the reference itself sizes it (W, H)
    assert result.score == pytest.approx(score, abs=1e-4)
    np.testing.assert_allclose(result.map, pmap, atol=1e-4)
    assert result.details["mode"] == "reference" and result.details["prompts"] == "g-refine"
    # not a degenerate comparison: a score inside (0, 1), a min-max map spanning most of [0, 1]
    assert 0.0 < score < 1.0 and result.map.min() < 0.1 and result.map.max() > 0.9 and pmap.std() > 0.05


def test_fixed_mode_differs_from_the_reference(reference_pq, image):
    fixed = PQMap(**VIT_B16, prompt_checkpoints="g-refine").score([image])[0]
    ref = reference_pq.score([image])[0]
    assert fixed.details["mode"] == "learned"
    assert abs(fixed.score - ref.score) > 1e-4 or not np.allclose(fixed.map, ref.map, atol=1e-3)
    assert fixed.map.shape == (200, 300) and set(fixed.details["factor_maps"]) == {
        "overall",
        "technical",
        "rationality",
        "naturalness",
    }


def test_g_refine_recipe_loads_the_bundled_prompts(reference_pq, reference_features):
    recipe = Recipe.load("g-refine")
    spec = recipe.part("perceptual")
    assert spec is not None and spec.options["prompt_checkpoints"] == "g-refine"
    assert 'prompt_checkpoints = "g-refine"' in recipe.dump()
    # the recipe's part, on the random ViT-B/16 (no download): its table is the bundled prompts'
    options = {**spec.options, "weights": "random", "device": "cpu"}
    pq = recipe.build_part(type(spec)(kind="indicator", part="pq-map", options=options))
    assert isinstance(pq, PQMap) and not pq.zero_shot
    backbone = pq.backbone()
    assert backbone is reference_pq.backbone()
    table = pq.text_table(backbone)
    expected = torch.stack([F.normalize(t, dim=-1) for t in reference_features[0]])
    torch.testing.assert_close(table, expected, atol=1e-5, rtol=1e-4)
