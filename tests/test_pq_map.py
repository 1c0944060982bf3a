"""PQ-Map: the cask effect, pair probabilities, learned-prompt checkpoints, the indicator."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from grefine_kit.errors import UserError
from grefine_kit.indicators.clip_query import ClipSurgeryQuery
from grefine_kit.indicators.pq_map import (
    DEFAULT_ALPHA,
    FACTORS,
    PQMap,
    cask_effect,
    load_prompt_features,
    pair_probabilities,
    save_prompt_checkpoint,
)
from grefine_kit.models.loading import BackboneSpec, get_backbone
from grefine_kit.models.surgery import upsample_patch_values
from grefine_kit.testing.conformance import check_indicator, sample_images

TINY = {"model": "grefine-tiny", "weights": "random", "device": "cpu"}


@pytest.fixture(scope="module")
def backbone():
    return get_backbone(BackboneSpec(**TINY))


def test_cask_effect_by_hand():
    raw = torch.tensor([[0.8, 0.5, 0.9, 0.7], [0.6, 0.99, 0.2, 0.3]])
    alpha = (0.935, 0.892 * 0.6, 0.826 * 0.8)  # 0.935, 0.5352, 0.6608
    got = cask_effect(raw, alpha)
    # row 0: only technical (0.5 < 0.935) costs; row 1: rationality and naturalness cost
    expected = [0.8 * (0.5 / 0.935), 0.6 * 1.0 * (0.2 / 0.5352) * (0.3 / 0.6608)]
    torch.testing.assert_close(got, torch.tensor(expected))
    # the reference bug divides all three by alpha[0]
    bug = cask_effect(raw, alpha, alpha_bug=True)
    expected_bug = [
        0.8 * (0.5 / 0.935) * (0.9 / 0.935) * (0.7 / 0.935),
        0.6 * 1.0 * (0.2 / 0.935) * (0.3 / 0.935),
    ]
    torch.testing.assert_close(bug, torch.tensor(expected_bug))
    assert cask_effect(torch.tensor([0.7, 1.0, 1.0, 1.0]), alpha) == pytest.approx(0.7)
    with pytest.raises(ValueError):
        cask_effect(torch.ones(3), alpha)


def test_pair_probabilities_by_hand():
    tokens = torch.tensor([[[2.0, 0.0], [0.0, 1.0]]])  # normalised: e1, e2
    table = torch.tensor([[[1.0, 0.0], [0.0, 1.0]]])  # positive e1, negative e2
    got = pair_probabilities(tokens, table, scale=2.0)
    e = float(np.exp(2.0))
    torch.testing.assert_close(got, torch.tensor([[[e / (e + 1)], [1 / (1 + e)]]]))


def test_pq_map_conformance_and_details(backbone):
    check_indicator(PQMap(**TINY))  # the class default: zero-shot, min-max calibrated
    pq = PQMap(**TINY, zero_shot_calibration="none")  # the raw cask product, as for learned prompts
    assert pq._backbone is None and pq.needs_prompt is False  # construction is cheap
    results = check_indicator(pq)
    images = sample_images()
    tokens = backbone.encode_image_tokens(images)
    table = pq.text_table(backbone)
    raw = pair_probabilities(tokens, table, backbone.logit_scale)
    per = cask_effect(raw, DEFAULT_ALPHA)
    for j, (image, r) in enumerate(zip(images, results, strict=True)):
        assert r.indicator == "pq-map"
        assert set(r.details["factors"]) == set(FACTORS)
        factors = torch.tensor([r.details["factors"][f] for f in FACTORS])
        assert r.score == pytest.approx(float(cask_effect(factors, DEFAULT_ALPHA)), abs=1e-6)
        assert r.score == pytest.approx(float(per[j, 0]), abs=1e-6)
        expected_map = upsample_patch_values(per[j : j + 1, 1:], (14, 14), (image.height, image.width))[0]
        np.testing.assert_allclose(r.map, expected_map, atol=1e-5)
        fmaps = r.details["factor_maps"]
        assert set(fmaps) == set(FACTORS) and all(m.shape == r.map.shape for m in fmaps.values())
        assert "factors" in r.to_json()["details"]


def test_zero_shot_minmax_calibration(backbone):
    """Zero-shot: score = the overall pair's probability (CLIP-IQA), map = the per-image min-max of
    the cask product over the patch tokens, so the mask 1 - P > tau can never be the whole image."""
    images = sample_images()
    pq = PQMap(**TINY)
    assert pq.zero_shot and pq.mode == "zero-shot"
    results = pq.score(images)
    tokens = backbone.encode_image_tokens(images)
    raw = pair_probabilities(tokens, pq.text_table(backbone), backbone.logit_scale)
    per = cask_effect(raw, DEFAULT_ALPHA)[:, 1:]
    for j, (image, r) in enumerate(zip(images, results, strict=True)):
        assert r.score == pytest.approx(float(raw[j, 0, 0]), abs=1e-6)
        assert r.details["mode"] == "zero-shot" and r.details["prompts"] == "zero-shot"
        values = per[j]
        norm = (values - values.min()) / (values.max() - values.min())
        expected = upsample_patch_values(norm[None], (14, 14), (image.height, image.width))[0]
        np.testing.assert_allclose(r.map, expected, atol=1e-5)
        assert r.map.max() > 0.95 and r.map.min() < 0.05  # spans [0, 1]: never all "bad"
        assert float((1.0 - r.map > 0.5).mean()) < 1.0


def test_pq_map_options_change_results():
    images = sample_images()
    base = PQMap(**TINY).score(images)
    compat = PQMap(**TINY, reference_compat=True).score(images)
    assert any(abs(a.score - b.score) > 1e-4 for a, b in zip(base, compat, strict=True))
    # no factor falls under 0.1: score = overall
    low = PQMap(**TINY, alpha=(0.1, 0.1, 0.1), zero_shot_calibration="none").score(images)
    for r in low:
        assert r.score == pytest.approx(r.details["factors"]["overall"], abs=1e-6)
    bilinear = PQMap(**TINY, interpolation="bilinear", factor_maps=False).score(images)
    assert "factor_maps" not in bilinear[0].details
    assert not np.allclose(bilinear[0].map, base[0].map)
    native = PQMap(**TINY, native_size=True, batch_size=1).score(images)
    assert native[0].details["grid"] == (3, 4) and native[0].map.shape == (48, 64)
    assert native[1].details["grid"] == (4, 2) and native[1].map.shape == (57, 33)


def test_pq_map_validation():
    for bad in (
        {"alpha": (0.5, 0.5)},
        {"alpha": (0.0, 0.5, 0.5)},
        {"prompt_checkpoints": ("a.pth",) * 3},
        {"prompt_checkpoints": "no-such-set"},
        {"prompt_checkpoints": "/some/path.pth"},
        {"zero_shot_calibration": "zscore"},
        {"pos_embed_interpolation": "nearest"},
        {"prompt_pairs": (("a", "b"),) * 3},
        {"prompt_pairs": (("a", ""),) * 4},
        {"interpolation": "nearest"},
        {"surgery_depth": 0},
        {"batch_size": 0},
        {"dtype": "float64"},
        {"device": "toaster"},
    ):
        with pytest.raises((ValueError, TypeError)):
            PQMap(**bad)
    assert PQMap(prompt_pairs=[["good", "bad"]] * 4).prompt_pairs == (("good", "bad"),) * 4
    for value, canonical in (
        ("g-refine", "g-refine"),
        ("builtin:g-refine", "g-refine"),
        ("zero-shot", "zero-shot"),
        ([], "zero-shot"),
        (["a", "b", "c", "d"], ("a", "b", "c", "d")),
    ):
        assert PQMap(prompt_checkpoints=value).prompt_checkpoints == canonical


def test_prompt_checkpoint_format_and_middle_order(tmp_path, backbone):
    path = save_prompt_checkpoint(tmp_path / "overall.pth", backbone, ("Good photo.", "Bad photo."))
    params = torch.load(path, weights_only=True)["params"]
    width = backbone.text_width
    assert params["prompt_learner.ctx"].shape == (2, 16, width)
    assert params["prompt_learner.token_prefix"].shape == (2, 1, width)
    assert params["prompt_learner.token_suffix"].shape == (2, 60, width)
    # With ctx left at its init (the "X" embeddings), [SOS | ctx[:8] | words | ctx[8:] | EOT] is the
    # ordinary tokenisation of this text, so the plain text path must give the same features.
    xs = " ".join(["X"] * 8)
    texts = [f"{xs} Good photo. {xs}", f"{xs} Bad photo. {xs}"]
    for normalize in (True, False):
        got = load_prompt_features(backbone, path, normalize=normalize)
        torch.testing.assert_close(
            got, backbone.encode_text(texts, normalize=normalize), atol=1e-5, rtol=1e-5
        )


def test_prompt_checkpoint_round_trip_learned_ctx(tmp_path, backbone):
    ctx = torch.randn(2, 16, backbone.text_width, generator=torch.Generator().manual_seed(5)) * 0.02
    path = save_prompt_checkpoint(
        tmp_path / "technical.pth", backbone, ("Sharp photo.", "Blurry photo."), ctx=ctx
    )
    saved = torch.load(path, weights_only=True)
    assert torch.equal(saved["params"]["prompt_learner.ctx"], ctx)
    tokens = backbone.tokenize(["Sharp photo.", "Blurry photo."])  # SOS w1 w2 w3 EOT
    with torch.no_grad():
        emb = backbone.embed_tokens(tokens)
    rows = [
        torch.cat([emb[i, :1], ctx[i, :8], emb[i, 1:4], ctx[i, 8:], emb[i, 4 : 77 - 16]]) for i in range(2)
    ]
    with torch.no_grad():
        expected = backbone.encode_text_embeddings(torch.stack(rows), [1 + 16 + 3] * 2)
    torch.testing.assert_close(load_prompt_features(backbone, path), expected, atol=1e-5, rtol=1e-5)
    # a checkpoint without our metadata (as pyiqa writes it): EOT found from the embeddings
    torch.save({"params": saved["params"]}, tmp_path / "plain.pth")
    torch.testing.assert_close(
        load_prompt_features(backbone, tmp_path / "plain.pth"), expected, atol=1e-5, rtol=1e-5
    )


def test_pq_map_from_prompt_checkpoints(tmp_path, backbone):
    paths = []
    for i, pair in enumerate(PQMap().prompt_pairs):
        ctx = torch.randn(2, 16, backbone.text_width, generator=torch.Generator().manual_seed(i)) * 0.02
        paths.append(str(save_prompt_checkpoint(tmp_path / f"f{i}.pth", backbone, pair, ctx=ctx)))
    pq = PQMap(**TINY, prompt_checkpoints=paths)
    table = pq.text_table(backbone)
    assert table.shape == (4, 2, backbone.embed_dim)
    torch.testing.assert_close(table[2], load_prompt_features(backbone, paths[2]))
    results = pq.score(sample_images())
    assert results[0].details["zero_shot"] is False
    zero = PQMap(**TINY).score(sample_images())
    assert abs(results[0].score - zero[0].score) > 1e-6
    torch.save({"nothing": torch.zeros(1)}, tmp_path / "bad.pth")
    with pytest.raises(UserError, match="not a CLIP-IQA"):
        PQMap(**TINY, prompt_checkpoints=[str(tmp_path / "bad.pth")] * 4).score(sample_images())
    good = torch.load(paths[0], weights_only=True)["params"]
    for key, value in (
        ("prompt_learner.ctx", good["prompt_learner.ctx"][:1]),  # one text's context for a pair
        ("prompt_learner.token_suffix", [0.0]),  # not a tensor
    ):
        torch.save({"params": {**good, key: value}}, tmp_path / "odd.pth")
        with pytest.raises(UserError, match=r"odd\.pth"):
            load_prompt_features(backbone, tmp_path / "odd.pth")


def test_pq_map_and_clip_surgery_share_one_image_forward(backbone):
    backbone.clear_caches()
    calls: list[int] = []
    handle = backbone.model.visual.conv1.register_forward_hook(
        lambda _m, inp, _o: calls.append(inp[0].shape[0])
    )
    try:
        images = sample_images([(50, 40), (30, 70), (64, 64)])
        PQMap(**TINY).score(images)
        ClipSurgeryQuery(**TINY).score(images, ["a cat"] * 3)
    finally:
        handle.remove()
    assert calls == [3]
