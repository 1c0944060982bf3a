"""CLIP Surgery invariants, the SurgeryCLIP wrapper's caches, and the clip-surgery indicator."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from grefine_kit.errors import UserError
from grefine_kit.indicators.clip_query import ClipSurgeryQuery
from grefine_kit.models.backbone import SurgeryCLIP
from grefine_kit.models.surgery import (
    clip_surgery_tokens,
    feature_surgery,
    similarity_maps,
    upsample_patch_values,
)
from grefine_kit.testing.conformance import check_indicator, sample_images
from grefine_kit.testing.tiny_clip import build_tiny_clip

TINY = {"model": "grefine-tiny", "weights": "random", "device": "cpu"}


@pytest.fixture(scope="module")
def model():
    return build_tiny_clip(seed=3, image_size=64)


@pytest.fixture()
def wrapper(model):
    from open_clip.tokenizer import SimpleTokenizer

    return SurgeryCLIP(model, SimpleTokenizer(), name="tiny-test")


def _count_calls(module: torch.nn.Module) -> list[int]:
    calls: list[int] = []
    module.register_forward_hook(lambda _m, inp, _out: calls.append(int(inp[0].shape[0])))
    return calls


def _manual_block(blk, x):
    """Plain recomputation of an open_clip residual block: q-k-v attention + MLP."""
    attn = blk.attn
    width, heads = x.shape[-1], attn.num_heads
    h = F.layer_norm(x, (width,), blk.ln_1.weight, blk.ln_1.bias, blk.ln_1.eps)
    q, k, v = (h @ attn.in_proj_weight.T + attn.in_proj_bias).chunk(3, dim=-1)
    split = lambda t: t.reshape(*t.shape[:2], heads, width // heads).transpose(1, 2)  # noqa: E731
    q, k, v = split(q), split(k), split(v)
    a = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(width // heads), dim=-1) @ v
    x = x + attn.out_proj(a.transpose(1, 2).reshape(*x.shape))
    h2 = F.layer_norm(x, (width,), blk.ln_2.weight, blk.ln_2.bias, blk.ln_2.eps)
    return x + blk.mlp(h2)


def _manual_vv(blk, h):
    attn = blk.attn
    width, heads = h.shape[-1], attn.num_heads
    v = h @ attn.in_proj_weight[2 * width :].T + attn.in_proj_bias[2 * width :]
    v = v.reshape(*h.shape[:2], heads, width // heads).transpose(1, 2)
    a = torch.softmax(v @ v.transpose(-1, -2) * (width // heads) ** -0.5, dim=-1) @ v
    return attn.out_proj(a.transpose(1, 2).reshape(*h.shape))


def _manual_surgery(model, pixels, depth, pos_mode="bilinear"):
    vis = model.visual
    x = F.conv2d(pixels, vis.conv1.weight, stride=vis.patch_size)
    gh, gw = x.shape[-2:]
    x = x.flatten(2).transpose(1, 2)
    x = torch.cat([vis.class_embedding.expand(x.shape[0], 1, -1), x], dim=1)
    pos = vis.positional_embedding
    g0 = vis.grid_size
    patch_pos = pos[1:].reshape(1, g0[0], g0[1], -1).permute(0, 3, 1, 2)
    patch_pos = F.interpolate(patch_pos, size=(gh, gw), mode=pos_mode, align_corners=False)
    x = x + torch.cat([pos[:1], patch_pos.permute(0, 2, 3, 1).reshape(gh * gw, -1)])
    x = F.layer_norm(x, x.shape[-1:], vis.ln_pre.weight, vis.ln_pre.bias, vis.ln_pre.eps)
    blocks = list(vis.transformer.resblocks)
    start = max(0, len(blocks) - depth)
    s = None
    for i, blk in enumerate(blocks):
        if i >= start:
            s = x if s is None else s
            s = s + _manual_vv(
                blk, F.layer_norm(x, x.shape[-1:], blk.ln_1.weight, blk.ln_1.bias, blk.ln_1.eps)
            )
        x = _manual_block(blk, x)
    out = torch.cat([x[:, :1], s[:, 1:]], dim=1)
    out = F.layer_norm(out, out.shape[-1:], vis.ln_post.weight, vis.ln_post.bias, vis.ln_post.eps)
    return out @ vis.proj


@torch.no_grad()
def test_cls_equals_encode_image(model):
    pixels = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    tokens = clip_surgery_tokens(model, pixels)
    assert tokens.shape == (2, 1 + 4 * 4, model.visual.output_dim)
    torch.testing.assert_close(tokens[:, 0], model.encode_image(pixels), atol=1e-5, rtol=1e-5)


@torch.no_grad()
@pytest.mark.parametrize(("size", "depth"), [((64, 64), 6), ((48, 80), 2), ((64, 32), 1)])
def test_surgery_matches_step_by_step(model, size, depth):
    pixels = torch.randn(1, 3, *size, generator=torch.Generator().manual_seed(1))
    got = clip_surgery_tokens(model, pixels, surgery_depth=depth)
    torch.testing.assert_close(got, _manual_surgery(model, pixels, depth), atol=1e-4, rtol=1e-4)
    assert got.shape[1] == 1 + (size[0] // 16) * (size[1] // 16)


@torch.no_grad()
def test_positional_embedding_resize_mode(model, wrapper):
    """Bilinear (the reference code's) by default, bicubic on request; equal at the model's size."""
    pixels = torch.randn(1, 3, 48, 80, generator=torch.Generator().manual_seed(6))
    for mode in ("bilinear", "bicubic"):
        got = clip_surgery_tokens(model, pixels, pos_interpolation=mode)
        torch.testing.assert_close(got, _manual_surgery(model, pixels, 6, mode), atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(
        clip_surgery_tokens(model, pixels), _manual_surgery(model, pixels, 6, "bilinear")
    )
    assert not torch.allclose(
        clip_surgery_tokens(model, pixels, pos_interpolation="bicubic"), clip_surgery_tokens(model, pixels)
    )
    native = torch.randn(1, 3, 64, 64, generator=torch.Generator().manual_seed(7))
    torch.testing.assert_close(
        clip_surgery_tokens(model, native, pos_interpolation="bicubic"), clip_surgery_tokens(model, native)
    )
    with pytest.raises(ValueError, match="positional-embedding interpolation"):
        clip_surgery_tokens(model, pixels, pos_interpolation="nearest")
    # the wrapper caches per mode: asking for the other mode is a different entry
    image = Image.fromarray(np.full((48, 80, 3), 90, np.uint8))
    a = wrapper.encode_image_tokens([image], native_size=True)
    b = wrapper.encode_image_tokens([image], native_size=True, pos_interpolation="bicubic")
    assert not torch.allclose(a, b)
    # ... and the indicators' option reaches it
    images = sample_images()
    query = ClipSurgeryQuery(**TINY, native_size=True, query="a cat")
    one = query.score(images)
    two = ClipSurgeryQuery(**TINY, native_size=True, query="a cat", pos_embed_interpolation="bicubic").score(
        images
    )
    assert any(not np.allclose(x.map, y.map) for x, y in zip(one, two, strict=True))


@torch.no_grad()
def test_depth_changes_patches_not_cls(model):
    pixels = torch.randn(1, 3, 64, 64, generator=torch.Generator().manual_seed(2))
    a, b = clip_surgery_tokens(model, pixels, 1), clip_surgery_tokens(model, pixels, 3)
    torch.testing.assert_close(a[:, 0], b[:, 0])
    assert not torch.allclose(a[:, 1:], b[:, 1:], atol=1e-4)
    with pytest.raises(ValueError):
        clip_surgery_tokens(model, pixels, 0)
    with pytest.raises(ValueError, match="multiple of the patch"):
        clip_surgery_tokens(model, torch.randn(1, 3, 60, 64))


@torch.no_grad()
def test_other_sizes_never_mutate_the_model(model):
    pixels = torch.randn(1, 3, 64, 64, generator=torch.Generator().manual_seed(4))
    pos_before = model.visual.positional_embedding.detach().clone()
    first = clip_surgery_tokens(model, pixels)
    clip_surgery_tokens(model, torch.randn(1, 3, 96, 48))
    torch.testing.assert_close(clip_surgery_tokens(model, pixels), first, atol=0, rtol=0)
    assert torch.equal(model.visual.positional_embedding, pos_before)


def test_non_square_orientation(wrapper):
    # 96 wide x 64 high, one odd patch at row 0, column 5 of the (4, 6) grid
    arr = np.full((64, 96, 3), 128, np.uint8)
    arr[0:16, 80:96] = (255, 0, 0)
    image = Image.fromarray(arr)
    assert wrapper.grid_for(image, native_size=True) == (4, 6)
    tokens = wrapper.encode_image_tokens([image], native_size=True)
    patches = F.normalize(tokens[0, 1:], dim=-1)
    odd = int((patches @ patches.median(dim=0).values).argmin())
    assert odd == 0 * 6 + 5
    # similarity values equal to the column index: the map must grow left to right, at (H, W)
    sim = torch.arange(6.0).repeat(4).reshape(1, 24, 1)
    (maps,) = similarity_maps(sim, (4, 6), [(64, 96)], interpolation="bilinear")
    assert maps.shape == (1, 64, 96)
    assert maps[0, :, 0].max() < 0.1 and maps[0, :, -1].min() > 0.9
    assert np.all(np.diff(maps[0, 10]) >= -1e-6)


def test_feature_surgery_and_similarity_maps_by_hand():
    img = torch.tensor([[[3.0, 4.0], [0.0, 2.0]]])  # normalised: (0.6, 0.8), (0, 1)
    text = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    red = torch.tensor([0.5, 0.5])
    sim = feature_surgery(img, text, red)
    expected = torch.tensor([[[0.6 * 0.5 + 0.8 * -0.5, 0.6 * -0.5 + 0.8 * 0.5], [-0.5, 0.5]]])
    torch.testing.assert_close(sim, expected)
    torch.testing.assert_close(feature_surgery(img, text, None), torch.tensor([[[0.6, 0.8], [0.0, 1.0]]]))
    maps = similarity_maps(torch.tensor([[[1.0], [3.0]], [[2.0], [2.0]]]), (1, 2), [(5, 7), (3, 4)])
    assert maps[0].shape == (1, 5, 7) and maps[1].shape == (1, 3, 4)
    assert maps[0].min() == 0.0 and maps[0].max() == 1.0
    assert np.all(maps[1] == 0.0)  # a constant similarity carries no location
    up = upsample_patch_values(torch.tensor([[0.2, 0.9]]), (1, 2), (4, 8), "bicubic")
    assert up.dtype == np.float32 and up.min() >= 0.0 and up.max() <= 1.0
    with pytest.raises(ValueError):
        upsample_patch_values(torch.zeros(1, 2), (1, 2), (4, 4), "nearest")


def test_preprocess_resizes_without_centre_crop(wrapper):
    arr = np.zeros((50, 200, 3), np.uint8)
    arr[:, :40] = (255, 0, 0)
    arr[:, 40:] = (0, 0, 255)
    x = wrapper.preprocess([Image.fromarray(arr)])
    assert x.shape == (1, 3, 64, 64)
    assert x[0, 0, :, 0].mean() > x[0, 2, :, 0].mean()  # left edge stays red: nothing cropped
    assert x[0, 2, :, -1].mean() > x[0, 0, :, -1].mean()
    assert wrapper.pixel_size_for(Image.new("RGB", (100, 70)), native_size=True) == (64, 96)
    with pytest.raises(ValueError, match="different input sizes"):
        wrapper.preprocess([Image.new("RGB", (100, 70)), Image.new("RGB", (64, 64))], native_size=True)


def test_image_token_cache_runs_the_encoder_once(wrapper):
    calls = _count_calls(wrapper.model.visual.conv1)
    a, b, c = sample_images([(64, 48), (33, 57), (40, 40)])
    first = wrapper.encode_image_tokens([a, b])
    again = wrapper.encode_image_tokens([b, a])
    assert calls == [2]
    torch.testing.assert_close(again, first.flip(0))
    wrapper.encode_image_tokens([a, c, c])
    assert calls == [2, 1]  # only the new image, once
    wrapper.encode_image_tokens([a], surgery_depth=1)  # another depth is another entry
    assert calls == [2, 1, 1]


def test_text_encoding_batched_deduplicated_cached(wrapper):
    calls = _count_calls(wrapper._text.token_embedding)
    feats = wrapper.encode_text(["a dog", "a cat", "a dog"])
    assert calls == [2] and feats.shape == (3, wrapper.embed_dim)
    torch.testing.assert_close(feats.norm(dim=-1), torch.ones(3))
    torch.testing.assert_close(feats[0], feats[2])
    wrapper.encode_text(["a cat"])
    assert calls == [2]
    raw = wrapper.encode_text(["a dog"], normalize=False)
    with torch.no_grad():
        direct = wrapper.model.encode_text(wrapper.tokenize(["a dog"]))
    torch.testing.assert_close(raw, direct)
    long = wrapper.tokenize(["word " * 200])
    assert long.shape == (1, 77) and int(long[0, -1]) == wrapper.eot_token_id
    assert wrapper.encode_text(["word " * 200]).shape == (1, wrapper.embed_dim)


def test_ensemble_is_mean_of_normalised_templates(wrapper):
    calls = _count_calls(wrapper._text.token_embedding)
    templates = ("a photo of a {}.", "{}", "a {} in the scene.")
    got = wrapper.encode_text_ensemble(["dog", "cat"], templates)
    assert sum(calls) == 6  # each text once (one forward per token length: batch-invariant)
    for row, word in zip(got, ["dog", "cat"], strict=True):
        mean = wrapper.encode_text([t.format(word) for t in templates]).mean(0)
        torch.testing.assert_close(row, mean / mean.norm())
    before = list(calls)
    wrapper.encode_text_ensemble(["dog", "dog"], templates)
    assert calls == before  # all cached


def test_text_embeddings_path_matches_tokens(wrapper):
    tokens = wrapper.tokenize(["a red car", "two birds on a wire"])
    with torch.no_grad():
        emb = wrapper.embed_tokens(tokens)
        got = wrapper.encode_text_embeddings(emb, tokens.argmax(dim=-1), normalize=False)
    torch.testing.assert_close(
        got, wrapper.encode_text(["a red car", "two birds on a wire"], normalize=False)
    )
    assert wrapper.logit_scale == pytest.approx(1 / 0.07, rel=1e-4)


def test_clip_surgery_indicator_conformance_and_score():
    ind = ClipSurgeryQuery(**TINY)
    assert ind.needs_prompt is True and ind._backbone is None  # construction loads nothing
    results = check_indicator(ind, prompt="a cat")
    backbone = ind.load()
    images = sample_images()
    text = backbone.encode_text_ensemble(["a cat", ""], _templates())
    direction = F.normalize(text[0] - text[1], dim=0)
    cls = F.normalize(backbone.encode_image_tokens(images)[:, 0], dim=-1)
    for r, c in zip(results, cls @ direction, strict=True):
        assert r.score == pytest.approx(1 / (1 + math.exp(-10 * float(c))), abs=1e-5)
        assert r.map.min() == pytest.approx(0.0, abs=1e-3) and r.details["query"] == "a cat"


def _templates():
    from grefine_kit.indicators._clip_common import IMAGENET_TEMPLATES

    return IMAGENET_TEMPLATES


def test_clip_surgery_query_option_and_errors():
    images = sample_images()
    ind = ClipSurgeryQuery(**TINY, query="a dog", ensemble=False)
    assert [r.details["query"] for r in ind.score(images, ["ignored", "ignored"])] == ["a dog", "a dog"]
    assert len(ind.score(images)) == 2  # the query option stands in for prompts
    plain = ClipSurgeryQuery(**TINY)
    with pytest.raises(UserError):
        plain.score(images)
    with pytest.raises(UserError):
        plain.score(images, ["", "a dog"])
    with pytest.raises(UserError, match="not one string"):
        plain.score(images, "ab")  # a bare string would be read one character per image
    differ = plain.score(images, ["a dog", "a red car"])
    assert differ[0].details["query"] == "a dog" and differ[1].details["query"] == "a red car"
    with pytest.raises(ValueError):
        ClipSurgeryQuery(interpolation="nearest")
    with pytest.raises(ValueError):
        ClipSurgeryQuery(surgery_depth=0)


def test_truncated_text_forward_equals_the_full_77_token_forward(wrapper):
    texts = ["dog", "a small red house with a blue door under a yellow sun", "word " * 200, ""]
    tokens = wrapper.tokenize(texts)
    with torch.no_grad():
        full = wrapper.model.encode_text(tokens)  # open_clip runs all 77 positions
    wrapper.clear_caches()
    torch.testing.assert_close(wrapper.encode_text(texts, normalize=False), full, atol=1e-5, rtol=1e-5)


def test_text_cache_smaller_than_one_call(model):
    from open_clip.tokenizer import SimpleTokenizer

    small = SurgeryCLIP(model, SimpleTokenizer(), name="tiny-small-cache", text_cache_size=2)
    texts = ["a dog", "a cat", "a red car", "a bird", "a dog"]
    got = small.encode_text(texts)  # more distinct texts than the cache holds: rows must not be evicted
    assert got.shape == (5, small.embed_dim) and len(small._text_cache) == 2
    with torch.no_grad():
        direct = F.normalize(model.encode_text(small.tokenize(texts)), dim=-1)
    torch.testing.assert_close(got, direct, atol=1e-5, rtol=1e-5)


def test_custom_text_tower_pool_type_is_respected():
    import open_clip
    from open_clip.tokenizer import SimpleTokenizer

    torch.manual_seed(0)
    custom = open_clip.CustomTextCLIP(
        embed_dim=32,
        vision_cfg={"image_size": 32, "layers": 1, "width": 64, "head_width": 32, "patch_size": 16},
        text_cfg={
            "context_length": 77,
            "vocab_size": 49408,
            "width": 64,
            "heads": 2,
            "layers": 1,
            "pool_type": "last",
        },
    ).eval()
    wrapped = SurgeryCLIP(custom, SimpleTokenizer(), name="custom-last-pool")
    texts = ["a dog", "two birds on a wire"]
    with torch.no_grad():
        direct = custom.encode_text(wrapped.tokenize(texts))
    torch.testing.assert_close(wrapped.encode_text(texts, normalize=False), direct, atol=1e-5, rtol=1e-5)


def test_native_size_token_cap_holds_for_extreme_strips(wrapper):
    from grefine_kit.models.surgery import MAX_NATIVE_TOKENS

    for size in ((100_000, 1), (1, 100_000), (9_000, 9_000), (1, 1)):
        h, w = wrapper.grid_for(Image.new("L", size), native_size=True)
        assert min(h, w) >= 1 and h * w <= MAX_NATIVE_TOKENS, (size, h, w)
