"""Metric parts: the marking rules, the built-in metrics on tiny random models loaded back
through our loaders (open_clip for CLIPScore / HPSv2, transformers for PickScore)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from grefine_kit.errors import MissingDependencyError, UserError
from grefine_kit.metrics import Metric, compare, is_tie, negative_optimisation, rank_marks
from grefine_kit.testing import TINY_BACKBONE, check_metric, sample_images

NAN = float("nan")


# -- marking rules ---------------------------------------------------------------------------


def test_negative_optimisation_respects_direction():
    assert negative_optimisation(0.5, 0.4)
    assert not negative_optimisation(0.5, 0.6)
    assert negative_optimisation(10.0, 12.0, lower_better=True)
    assert not negative_optimisation(10.0, 8.0, lower_better=True)


def test_ties_are_not_worse_and_use_the_stated_tolerance():
    assert not negative_optimisation(0.5, 0.5)
    assert compare(0.5, 0.5 - 1e-7) == "tie"  # within 1e-6 absolute below 1
    assert compare(0.5, 0.5 - 1e-5) == "worse"
    assert compare(1000.0, 1000.0 - 5e-4) == "tie"  # relative above 1
    assert compare(1000.0, 1000.0 - 5e-3) == "worse"
    assert compare(0.5, 0.4, tolerance=0.2) == "tie"
    assert is_tie(3.0, 3.0, tolerance=0.0)
    with pytest.raises(ValueError):
        is_tie(1.0, 1.0, tolerance=-1.0)


def test_nan_is_never_worse_nor_better():
    assert compare(NAN, 0.3) == "n/a" and compare(0.3, NAN) == "n/a"
    assert not negative_optimisation(0.5, NAN)
    assert not negative_optimisation(NAN, 0.1, lower_better=True)


def test_rank_marks_direction_ties_and_nan():
    assert rank_marks([0.1, 0.3, 0.2]) == ["", "best", "second"]
    assert rank_marks([0.1, 0.3, 0.2], lower_better=True) == ["best", "", "second"]
    # a tie shares the rank; the next distinct value is second (dense ranking)
    assert rank_marks([0.3, 0.3, 0.2, 0.1]) == ["best", "best", "second", ""]
    # NaN is never best, even where it would sort first
    assert rank_marks([NAN, 0.2, 0.1]) == ["", "best", "second"]
    assert rank_marks([NAN, NAN]) == ["", ""]


# -- indicator metrics -----------------------------------------------------------------------


def test_indicator_metric_wraps_a_plugin_indicator(with_plugins):
    from grefine_kit.parts.registry import get_registry

    metric = get_registry().create(
        "metric", "indicator-score", {"indicator": "brightness", "options": {"gamma": 1.0}}
    )
    assert isinstance(metric, Metric) and not metric.lower_better and not metric.needs_prompt
    dark, bright = sample_images([(8, 8)])[0].point(lambda v: v // 4), sample_images([(8, 8)])[0]
    low, high = metric.score([dark, bright])
    assert low < high


def test_aq_map_metric_needs_prompts():
    from grefine_kit.parts.registry import get_registry

    metric = get_registry().create("metric", "aq-map", {**TINY_BACKBONE, "parser": "rules"})
    assert metric.needs_prompt and metric.name == "aq-map"
    with pytest.raises(UserError, match="needs a prompt"):
        metric.score(sample_images(), None)


# -- PIQE ------------------------------------------------------------------------------------


def test_piqe_metric_is_piqe_of_the_luma():
    from importlib import resources

    from PIL import Image

    from grefine_kit.indicators.piqe import grey_levels, piqe
    from grefine_kit.parts.registry import create_part

    image = Image.open(str(resources.files("grefine_kit") / "data" / "example.png")).convert("RGB")
    metric = create_part("metric", "piqe", activity_threshold=0.2)
    assert metric.lower_better and metric.score_range == (0.0, 100.0) and not metric.needs_prompt
    expected = piqe(grey_levels(np.asarray(image)), activity_threshold=0.2).score
    assert metric.score([image]) == [expected]
    assert 0.0 <= expected <= 100.0
    with pytest.raises(ValueError, match="16x16 block"):
        metric.score(sample_images([(8, 8)]))


# -- CLIPScore -------------------------------------------------------------------------------


def _manual_cosines(model, images, texts):
    import open_clip

    from grefine_kit.metrics.clip_metrics import clip_eval_pixels

    size = tuple(model.visual.image_size)
    pixels = clip_eval_pixels(images, size, open_clip.OPENAI_DATASET_MEAN, open_clip.OPENAI_DATASET_STD)
    tok = open_clip.get_tokenizer("ViT-B-16")  # the same SimpleTokenizer, context 77
    with torch.no_grad():
        img = model.encode_image(pixels, normalize=True)
        txt = model.encode_text(tok(texts), normalize=True)
    return (img * txt).sum(-1).double().numpy()


def test_clipscore_is_hessel_formula_on_a_local_dir_round_trip(tmp_path):
    from grefine_kit.metrics.clip_metrics import CLIPScore
    from grefine_kit.testing.tiny_clip import build_tiny_clip, save_tiny_clip_local_dir

    model = build_tiny_clip(seed=3)
    folder = save_tiny_clip_local_dir(tmp_path / "clip", model=model)
    metric = CLIPScore(model=f"local-dir:{folder}", weights="", device="cpu")
    images = sample_images([(40, 30), (31, 45), (64, 64)])
    prompts = ["a red square", "a blue sky", "two cats"]
    got = metric.score(images, prompts)
    cos = _manual_cosines(model, images, ["A photo depicts " + p for p in prompts])
    assert np.allclose(got, [2.5 * max(c, 0.0) for c in cos], atol=1e-5)
    assert metric.score_range == (0.0, 2.5)
    check_metric(metric)


def test_clipscore_conforms_on_the_tiny_backbone():
    from grefine_kit.parts.registry import get_registry

    metric = get_registry().create("metric", "clipscore", {**TINY_BACKBONE, "w": 1.0, "device": "cpu"})
    values = check_metric(metric)
    assert all(0.0 <= v <= 1.0 for v in values)


# -- HPSv2 -----------------------------------------------------------------------------------


@pytest.fixture
def tiny_hps_arch(tmp_path):
    """A tiny open_clip architecture registered under a test name (what HPSv2's ViT-H-14 is to us)."""
    import open_clip

    from grefine_kit.testing.tiny_clip import tiny_clip_config

    name = "grefine-test-hps-tiny"
    folder = tmp_path / "configs"
    folder.mkdir()
    (folder / f"{name}.json").write_text(json.dumps(tiny_clip_config()))
    open_clip.add_model_config(folder)
    return name


@pytest.mark.parametrize("suffix", [".pt", ".safetensors"])
def test_hpsv2_cosine_from_an_hps_style_checkpoint(tmp_path, tiny_hps_arch, suffix):
    from grefine_kit.metrics.clip_metrics import HPSv2
    from grefine_kit.testing.tiny_clip import build_tiny_clip

    model = build_tiny_clip(seed=5)
    state = {k: v.clone().contiguous() for k, v in model.state_dict().items()}
    path = tmp_path / f"hps{suffix}"
    if suffix == ".pt":  # the HPS releases wrap the weights: {"state_dict": ...}
        torch.save({"state_dict": state}, path)
    else:
        from safetensors.torch import save_file

        save_file(state, str(path))
    metric = HPSv2(model=tiny_hps_arch, checkpoint=str(path), device="cpu")
    images = sample_images([(48, 48), (20, 60)])
    prompts = ["a photo of a cat", "a house"]
    got = metric.score(images, prompts)
    assert np.allclose(got, _manual_cosines(model, images, prompts), atol=1e-5)
    check_metric(metric)


def test_hpsv2_refuses_pickled_objects(tmp_path, tiny_hps_arch):
    from grefine_kit.metrics.clip_metrics import HPSv2

    path = tmp_path / "evil.pt"
    torch.save({"state_dict": {"x": torch.zeros(1)}, "obj": object.__new__(_Payload)}, path)
    metric = HPSv2(model=tiny_hps_arch, checkpoint=str(path), device="cpu")
    with pytest.raises(UserError, match="cannot read checkpoint"):
        metric.score(sample_images([(8, 8)]), ["x"])


class _Payload:  # any class: weights_only=True refuses to unpickle it
    pass


def test_hpsv2_missing_hub_checkpoint_is_one_clear_error():
    from grefine_kit.metrics.clip_metrics import HPSv2

    metric = HPSv2(version="v2", device="cpu")  # HF_HUB_OFFLINE=1 in tests: cache only
    with pytest.raises(MissingDependencyError, match=r"HPSv2 checkpoint 'xswu/HPSv2/HPS_v2_compressed\.pt'"):
        metric.score(sample_images([(8, 8)]), ["x"])


# -- PickScore -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_pickscore(tmp_path_factory):
    """A tiny transformers CLIPModel + CLIPProcessor saved with save_pretrained (random weights)."""
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel, CLIPProcessor

    from grefine_kit.testing.tiny_diffusers import clip_bpe_tokenizer

    tok = clip_bpe_tokenizer()
    text = {"vocab_size": len(tok), "hidden_size": 32, "intermediate_size": 37, "num_attention_heads": 4,
            "num_hidden_layers": 2, "max_position_embeddings": 77, "bos_token_id": tok.bos_token_id,
            "eos_token_id": tok.eos_token_id, "pad_token_id": tok.pad_token_id}  # fmt: skip
    vision = {"image_size": 32, "patch_size": 8, "hidden_size": 32, "intermediate_size": 37,
              "num_attention_heads": 4, "num_hidden_layers": 2}  # fmt: skip
    torch.manual_seed(0)
    model = CLIPModel(CLIPConfig(text_config=text, vision_config=vision, projection_dim=16)).eval()
    processor = CLIPProcessor(
        image_processor=CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}),
        tokenizer=tok,
    )
    root = tmp_path_factory.mktemp("pickscore")
    model.save_pretrained(root / "model")
    processor.save_pretrained(root / "processor")
    return model, processor, root


def test_pickscore_is_scaled_cosine_after_a_save_pretrained_round_trip(tiny_pickscore):
    import torch.nn.functional as F

    from grefine_kit.metrics.pickscore import PickScore, _features

    model, processor, root = tiny_pickscore
    metric = PickScore(model=str(root / "model"), processor=str(root / "processor"), device="cpu")
    images = sample_images([(40, 30), (50, 50)])
    prompts = ["a cat on a mat", "a red car"]
    got = metric.score(images, prompts)
    pixels = processor(images=images, return_tensors="pt")["pixel_values"]
    text = processor(text=prompts, padding=True, return_tensors="pt")
    with torch.no_grad():
        img = F.normalize(_features(model.get_image_features(pixel_values=pixels)), dim=-1)
        txt = F.normalize(_features(model.get_text_features(**text)), dim=-1)
        expected = (model.logit_scale.exp() * (img * txt).sum(-1)).numpy()
    assert np.allclose(got, expected, atol=1e-4)
    assert not math.isclose(got[0], got[1])
    check_metric(metric)


def test_pickscore_missing_weights_offline_is_one_clear_error():
    from grefine_kit.metrics.pickscore import PickScore

    metric = PickScore(model="nobody/not-cached-pickscore", processor="nobody/not-cached-proc", device="cpu")
    with pytest.raises(MissingDependencyError, match="not available on this machine"):
        metric.score(sample_images([(8, 8)]), ["x"])


def test_pickscore_bad_folder_is_a_user_error(tmp_path):
    from grefine_kit.metrics.pickscore import PickScore

    (tmp_path / "empty").mkdir()
    metric = PickScore(model=str(tmp_path / "empty"), processor=str(tmp_path / "empty"), device="cpu")
    with pytest.raises(UserError, match="cannot load the PickScore"):
        metric.score(sample_images([(8, 8)]), ["x"])


# -- the CLI ---------------------------------------------------------------------------------


def test_list_metric_shows_direction_range_and_prompt():
    from click.testing import CliRunner

    from grefine_kit.cli import cli

    result = CliRunner().invoke(cli, ["list", "metric"])
    assert result.exit_code == 0, result.output
    lines = {line.split()[1]: line for line in result.output.splitlines() if line.startswith("metric")}
    assert {"pq-map", "aq-map", "clipscore", "pickscore", "hpsv2"} <= set(lines)
    assert "↑ [0, 2.5] prompt" in lines["clipscore"] and "↑ [0, 1] " in lines["pq-map"]


def test_plugins_shows_a_declared_licence(register_plugin):
    from click.testing import CliRunner

    from grefine_kit import hookimpl
    from grefine_kit.cli import cli

    class Plugin:
        @hookimpl
        def register_metrics(self, register):
            register(
                "nc-metric", "x.y:Z", lower_better=True, score_range=(0, 100), licence="non-commercial only"
            )

    register_plugin(Plugin(), name="nc-plugin", distribution="grefine-nc")
    result = CliRunner().invoke(cli, ["plugins"])
    block = result.output.split("grefine-nc (nc-plugin)")[1]
    assert block.splitlines()[1:3] == ["  licence: non-commercial only", "  metric:nc-metric"]
    listed = CliRunner().invoke(cli, ["list", "metric", "-f", "nc-*"]).output
    assert "↓ [0, 100]" in listed
