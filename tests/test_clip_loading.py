"""Backbone loading: local folders and OpenAI-format files round trip, the shared cache, errors."""

from __future__ import annotations

import pickle

import pytest
import torch

from grefine_kit.errors import MissingDependencyError, UserError
from grefine_kit.models.backbone import SurgeryCLIP
from grefine_kit.models.loading import BackboneSpec, clear_backbone_cache, get_backbone, load_backbone
from grefine_kit.testing.conformance import sample_images
from grefine_kit.testing.tiny_clip import (
    build_tiny_clip,
    save_tiny_clip_local_dir,
    save_tiny_clip_openai_checkpoint,
    tiny_clip_config,
)


@pytest.fixture(scope="module")
def original():
    return build_tiny_clip(seed=7, image_size=64)


def _same_outputs(original, backbone: SurgeryCLIP) -> None:
    pixels = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    tokens = backbone.tokenize(["a photo of a cat", "blue doctor suit"])
    with torch.no_grad():
        torch.testing.assert_close(
            backbone.model.encode_image(pixels), original.encode_image(pixels), atol=1e-5, rtol=1e-5
        )
        torch.testing.assert_close(
            backbone.model.encode_text(tokens), original.encode_text(tokens), atol=1e-5, rtol=1e-5
        )
    for (k, a), (k2, b) in zip(
        original.state_dict().items(), backbone.model.state_dict().items(), strict=True
    ):
        assert k == k2 and torch.equal(a, b), k


def test_tiny_config_is_real_open_clip(original):
    cfg = tiny_clip_config(64)
    assert cfg["text_cfg"]["vocab_size"] == 49408 and cfg["vision_cfg"]["image_size"] == 64
    assert type(original).__name__ == "CLIP" and original.visual.transformer.resblocks[0].attn.num_heads == 2
    again = build_tiny_clip(seed=7, image_size=64)
    assert all(
        torch.equal(a, b)
        for a, b in zip(original.state_dict().values(), again.state_dict().values(), strict=True)
    )
    other = build_tiny_clip(seed=8, image_size=64)
    assert not torch.equal(original.visual.proj, other.visual.proj)
    with pytest.raises(ValueError):
        tiny_clip_config(60)


def test_local_dir_round_trip(tmp_path, original):
    folder = save_tiny_clip_local_dir(tmp_path / "tiny", model=original)
    assert {p.name for p in folder.iterdir()} == {"open_clip_config.json", "open_clip_model.safetensors"}
    backbone = load_backbone(BackboneSpec(model=f"local-dir:{folder}", device="cpu"))
    _same_outputs(original, backbone)
    assert backbone.image_size == (64, 64)


@pytest.mark.parametrize("name", ["tiny-openai.pt", "tiny-openai.safetensors"])
def test_openai_checkpoint_round_trip(tmp_path, original, name):
    path = save_tiny_clip_openai_checkpoint(tmp_path / name, model=original)
    keys = set(torch.load(path, weights_only=True)) if path.suffix == ".pt" else None
    if keys is not None:
        assert {
            "visual.conv1.weight",
            "visual.transformer.resblocks.0.attn.in_proj_weight",
            "text_projection",
        } <= keys
    backbone = load_backbone(BackboneSpec(model="ViT-B-16-quickgelu", weights=str(path), device="cpu"))
    _same_outputs(original, backbone)
    assert backbone.model.visual.image_size == (64, 64)
    # the file may also be named in `model` alone
    alone = load_backbone(BackboneSpec(model=str(path), weights="", device="cpu"))
    _same_outputs(original, alone)


def test_checkpoint_files_refuse_pickled_objects(tmp_path):
    path = tmp_path / "evil.pt"
    with open(path, "wb") as f:
        pickle.dump({"visual.proj": UserError("not a tensor")}, f, protocol=2)
    with pytest.raises(UserError, match="cannot read checkpoint"):
        load_backbone(BackboneSpec(weights=str(path), device="cpu"))
    with pytest.raises(UserError, match="not found"):
        load_backbone(BackboneSpec(weights=str(tmp_path / "missing.pt"), device="cpu"))
    torch.save({"foo.weight": torch.zeros(2)}, tmp_path / "other.pt")
    with pytest.raises(UserError, match="does not match"):
        load_backbone(BackboneSpec(model="ViT-B-16", weights=str(tmp_path / "other.pt"), device="cpu"))


def test_backbone_cache_shares_one_instance():
    clear_backbone_cache()
    a = get_backbone(BackboneSpec("grefine-tiny", "random", device="cpu"))
    b = get_backbone(
        BackboneSpec("grefine-tiny", "random", device="auto" if not torch.cuda.is_available() else "cpu")
    )
    assert a is b
    c = get_backbone(BackboneSpec("grefine-tiny", "random:1", device="cpu"))
    assert c is not a and not torch.equal(c.model.visual.proj, a.model.visual.proj)
    half = get_backbone(BackboneSpec("grefine-tiny", "random", device="cpu", dtype="bfloat16"))
    assert half is not a and half.dtype == torch.bfloat16
    tokens = half.encode_image_tokens(sample_images([(40, 30)]))
    assert tokens.dtype == torch.float32 and torch.isfinite(tokens).all()
    clear_backbone_cache()
    assert get_backbone(BackboneSpec("grefine-tiny", "random", device="cpu")) is not a


def test_spec_validation_and_names():
    with pytest.raises(ValueError):
        BackboneSpec(dtype="float64")
    with pytest.raises(ValueError):
        BackboneSpec(device="toaster")
    with pytest.raises(ValueError):
        BackboneSpec(model=" ")
    with pytest.raises(UserError, match="only has random weights"):
        load_backbone(BackboneSpec("grefine-tiny", "openai", device="cpu"))
    with pytest.raises(UserError, match="did you mean"):
        load_backbone(BackboneSpec("ViT-B-61", "openai", device="cpu"))
    with pytest.raises(UserError, match="known tags"):
        load_backbone(BackboneSpec("ViT-B-16-quickgelu", "no-such-tag", device="cpu"))


def test_missing_weights_offline_is_one_clear_error(tmp_path, monkeypatch):
    from huggingface_hub import constants

    flag_before = constants.HF_HUB_OFFLINE
    monkeypatch.setenv("GREFINE_OFFLINE", "1")  # never touch the network in tests
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    for spec in (
        BackboneSpec("ViT-B-16-quickgelu", "openai", device="cpu"),
        BackboneSpec("hf-hub:someone/no-such-clip", device="cpu"),
        BackboneSpec("ViT-B/16", "openai", device="cpu"),  # OpenAI CLIP's spelling, not a file path
    ):
        with pytest.raises(MissingDependencyError) as info:
            load_backbone(spec)
        message = str(info.value)
        assert spec.model in message and "grefine fetch-weights" in message and "local-dir:" in message
    assert flag_before == constants.HF_HUB_OFFLINE  # the cache-only switch is restored


def test_openai_style_name_is_fetched_not_taken_for_a_file(monkeypatch):
    from grefine_kit.models.loading import fetch_weights

    monkeypatch.setenv("GREFINE_OFFLINE", "1")  # never touch the network in tests
    with pytest.raises(MissingDependencyError, match="not reachable"):
        fetch_weights(BackboneSpec("ViT-B/16", "openai", device="cpu"))


def test_openai_tags_get_quickgelu_whatever_the_name(monkeypatch, original):
    import open_clip

    monkeypatch.setenv("GREFINE_OFFLINE", "1")
    asked: list[dict] = []

    def fake_create_model(name, pretrained=None, **kwargs):  # stands in for the download only
        asked.append({"name": name, "pretrained": pretrained, **kwargs})
        return original

    monkeypatch.setattr(open_clip, "create_model", fake_create_model)
    load_backbone(BackboneSpec("ViT-B-16", "openai", device="cpu"))  # OpenAI weights were QuickGELU
    load_backbone(BackboneSpec("ViT-B-16", "laion2b_s34b_b88k", device="cpu"))  # trained with GELU
    assert asked[0]["force_quick_gelu"] is True
    assert not asked[1].get("force_quick_gelu", False)
