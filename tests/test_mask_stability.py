"""The learned-prompt perceptual map's normalisation (``rank-blend``, the g-refine default): the
area under the mask threshold moves smoothly and monotonically under a global shift of the four
factor scores, with the bound stated in docs/refiner.md:

    |area(shift 1) - area(shift 2)| <= w / (1 - w) * eps + 1 / N

for ``eps`` the largest per-patch change of the cask product and N patches (w = 0.5: eps + 1/N),
on maps without ties; each tied pair may add 1/N.
The old rule (the absolute cask product) jumps from ~0% to ~100% on the same data.
"""

from __future__ import annotations

import pytest
import torch

from grefine_kit.indicators.pq_map import DEFAULT_ALPHA, PQMap, cask_effect, rank_blend

THRESHOLD = 0.5  # the g-refine combiner's: deficient where 1 - P > 0.5
SHIFTS = torch.linspace(-0.2, 0.2, 41)


def _factor_maps(n: int = 64, seed: int = 0) -> torch.Tensor:
    """``[n, 196, 4]`` smooth random factor probabilities on a 14 x 14 grid, image levels spread
    from poor to excellent (continuous values: no ties)."""
    g = torch.Generator().manual_seed(seed)
    coarse = torch.randn(n, 4, 4, 4, generator=g)
    field = torch.nn.functional.interpolate(coarse, size=(14, 14), mode="bicubic", align_corners=False)
    level = torch.rand(n, 1, 1, 1, generator=g) * 3.0 - 0.5
    return torch.sigmoid(level + 1.0 + 0.6 * field).reshape(n, 4, -1).transpose(1, 2)


def _areas(raw: torch.Tensor, normalise, logit: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """Per shift: mask areas ``[S, n]`` and cask maps ``[S, n, N]``. The shift is added to the
    probabilities (clamped to [0, 1]) or, with ``logit``, to their logits (no clamping, so the
    maps stay free of ties)."""

    def shifted(d: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(torch.logit(raw) + 4 * d) if logit else (raw + d).clamp(0.0, 1.0)

    maps = torch.stack([cask_effect(shifted(d), DEFAULT_ALPHA) for d in SHIFTS])
    areas = torch.stack([(normalise(m) < THRESHOLD).float().mean(-1) for m in maps])
    return areas, maps


@pytest.mark.parametrize("weight", [0.5, 0.3, 0.8])
def test_rank_blend_area_is_monotone_and_lipschitz(weight: float):
    raw = _factor_maps()
    n_patches = raw.shape[1]
    areas, maps = _areas(raw, lambda m: rank_blend(m, weight), logit=True)
    # float32 leaves an accidental tied pair in a few maps; each may cost one more patch
    assert all(len(torch.unique(m)) >= m.numel() - 1 for m in maps.reshape(-1, n_patches))
    # monotone: more quality never gives more mask
    assert torch.all(areas[1:] <= areas[:-1] + 1e-9)
    # the bound, between every pair of shifts
    eps = (maps[:, None] - maps[None, :]).abs().amax(-1)  # [S, S, n]
    jump = (areas[:, None] - areas[None, :]).abs()
    bound = weight / (1 - weight) * eps + 2.0 / n_patches
    assert torch.all(jump <= bound + 1e-6)
    if weight == 0.5:  # the default's bound is not vacuous: some jump comes within a factor 2 of it
        assert torch.any((jump > 0.5 * bound) & (jump > 0.05))


def test_no_zero_to_full_jump_under_a_small_shift():
    """Shifts of +-0.1 added to the probabilities (clamping makes ties at 0 and 1), as in issue 22."""
    raw = _factor_maps()
    lo, hi = int(torch.argmin((SHIFTS + 0.1).abs())), int(torch.argmin((SHIFTS - 0.1).abs()))
    blended, _ = _areas(raw, lambda m: rank_blend(m, 0.5))
    absolute, _ = _areas(raw, lambda m: m)
    assert float((blended[lo] - blended[hi]).abs().max()) < 0.5
    assert torch.all(blended[1:] <= blended[:-1] + 1e-9)  # monotone with ties too
    # the old rule on the same data: some image goes from (almost) all masked to (almost) none
    assert float((absolute[lo] - absolute[hi]).abs().max()) > 0.9


def test_rank_blend_keeps_the_absolute_level():
    """An image whose patches are all good gets (almost) no mask; all bad, (almost) all masked."""
    good = 0.95 + 0.04 * torch.rand(1, 196, generator=torch.Generator().manual_seed(1))
    bad = 0.05 + 0.04 * torch.rand(1, 196, generator=torch.Generator().manual_seed(2))
    assert float((rank_blend(good) < THRESHOLD).float().mean()) <= 0.06
    assert float((rank_blend(bad) < THRESHOLD).float().mean()) >= 0.9
    flat = torch.full((1, 196), 0.7)
    assert torch.allclose(rank_blend(flat), torch.full((1, 196), 0.6))  # mid-rank 0.5 for ties


def test_pq_map_learned_default_is_rank_blend(tmp_path):
    from grefine_kit.indicators.pq_map import save_prompt_checkpoint
    from grefine_kit.models.loading import BackboneSpec, get_backbone
    from grefine_kit.testing.conformance import sample_images

    tiny = {"model": "grefine-tiny", "weights": "random", "device": "cpu"}
    backbone = get_backbone(BackboneSpec(**tiny))
    paths = [
        str(save_prompt_checkpoint(tmp_path / f"f{i}.pth", backbone, pair))
        for i, pair in enumerate(PQMap().prompt_pairs)
    ]
    default = PQMap(**tiny, prompt_checkpoints=paths)
    absolute = PQMap(**tiny, prompt_checkpoints=paths, map_normalisation="absolute")
    assert default.map_normalisation == "rank-blend" and default.mode == "learned"
    default.load()
    absolute.load()
    tokens = backbone.encode_image_tokens(sample_images()[:2])
    scale = backbone.logit_scale
    _, s1, v1, _ = default._score_map_values(tokens, scale)
    _, s2, v2, _ = absolute._score_map_values(tokens, scale)
    torch.testing.assert_close(s1, s2)  # the score is untouched
    torch.testing.assert_close(v1, rank_blend(v2, 0.5))
