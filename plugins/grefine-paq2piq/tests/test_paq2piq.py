"""grefine-paq2piq on random weights: architecture, boxes, both checkpoint layouts, hub cache, CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from grefine_paq2piq.indicator import PaQ2PiQ
from grefine_paq2piq.model import PaQ2PiQNet, boxes_for
from grefine_paq2piq.weights import clear_model_cache, get_model
from PIL import Image

from grefine_kit.cli import cli
from grefine_kit.errors import MissingDependencyError, UserError
from grefine_kit.parts.registry import get_registry, reset_registry
from grefine_kit.testing import check_indicator, check_part, check_recipe


@pytest.fixture(autouse=True)
def _fresh_caches():
    clear_model_cache()
    reset_registry()
    yield
    clear_model_cache()
    reset_registry()


def _image(w: int, h: int, seed: int = 0) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8), "RGB")


def _trained_looking_model(seed: int = 3) -> PaQ2PiQNet:
    """Random weights with non-trivial BatchNorm statistics, so a key mix-up would show."""
    torch.manual_seed(seed)
    model = PaQ2PiQNet()
    for module in model.modules():
        if isinstance(module, (torch.nn.BatchNorm1d, torch.nn.BatchNorm2d)):
            module.running_mean.uniform_(-0.1, 0.1)
            module.running_var.uniform_(0.5, 1.5)
    return model.eval()


def test_architecture_as_published() -> None:
    model = PaQ2PiQNet()
    head = list(model.head)
    names = ["_ConcatPool", "Flatten", "BatchNorm1d", "Dropout", "Linear", "ReLU"]
    assert [type(m).__name__ for m in head] == [*names, "BatchNorm1d", "Dropout", "Linear"]
    assert head[2].num_features == 1024 and head[3].p == 0.25 and head[7].p == 0.5
    assert (head[4].in_features, head[4].out_features) == (1024, 512)
    assert (head[8].in_features, head[8].out_features) == (512, 1)
    assert model.roi_pool.output_size == (2, 2) and model.roi_pool.spatial_scale == pytest.approx(1 / 32)
    feats = model.eval().features(torch.zeros(1, 3, 96, 160))
    assert feats.shape == (1, 512, 3, 5)  # layer4: 512 channels at stride 32
    assert "body.7.1.conv2.weight" in model.state_dict()  # body.7 = layer4, as in the release files


def test_boxes_whole_image_then_row_major_grid() -> None:
    boxes = boxes_for(100, 200, grid=20)
    assert boxes.shape == (401, 4)
    assert boxes[0].tolist() == [0.0, 0.0, 200.0, 100.0]
    assert boxes[1].tolist() == pytest.approx([0.0, 0.0, 10.0, 5.0])
    assert boxes[2].tolist() == pytest.approx([10.0, 0.0, 20.0, 5.0])  # second block: same row
    assert boxes[21].tolist() == pytest.approx([0.0, 5.0, 10.0, 10.0])  # next row
    assert boxes[-1].tolist() == pytest.approx([190.0, 95.0, 200.0, 100.0])


@pytest.mark.parametrize("layout", ["original", "flat", "dataparallel"])
def test_both_checkpoint_layouts_round_trip(tmp_path: Path, layout: str) -> None:
    model = _trained_looking_model()
    state = model.state_dict()
    if layout == "original":
        payload: object = {"model": state}
    elif layout == "flat":
        payload = state
    else:
        payload = {"model": {f"module.{k}": v for k, v in state.items()}}
    path = tmp_path / f"paq2piq-{layout}.pth"
    torch.save(payload, path)
    loaded = get_model(str(path), "cpu")
    for key, value in state.items():
        assert torch.equal(loaded.state_dict()[key], value), key
    image = _image(96, 64)
    ours = PaQ2PiQ(weights=str(path), device="cpu")
    pixels = ours.pixels(image)
    boxes = boxes_for(pixels.shape[2], pixels.shape[3])
    with torch.inference_mode():
        expected = model(pixels, boxes)
    raw_global, raw_map = ours.raw_scores(image)
    assert raw_global == pytest.approx(float(expected[0]), abs=1e-4)
    np.testing.assert_allclose(raw_map.reshape(-1), expected[1:].numpy(), atol=1e-4)


def test_checkpoint_without_batch_counters_loads(tmp_path: Path) -> None:
    model = _trained_looking_model()
    state = {k: v for k, v in model.state_dict().items() if "num_batches" not in k}
    assert len(state) < len(model.state_dict())  # the file really lacks the BatchNorm counters
    torch.save(state, tmp_path / "old.pth")
    loaded = get_model(str(tmp_path / "old.pth"), "cpu")
    for key, value in state.items():  # every weight and running statistic the file has is used
        assert torch.equal(loaded.state_dict()[key], value), key
    pixels = torch.rand(1, 3, 64, 96, generator=torch.Generator().manual_seed(0))
    boxes = boxes_for(64, 96)
    with torch.inference_mode():  # eval mode: the counters play no part in the scores
        torch.testing.assert_close(loaded(pixels, boxes), model(pixels, boxes))


def test_bad_checkpoints_are_refused_clearly(tmp_path: Path) -> None:
    torch.save({"model": {"fc.weight": torch.zeros(1)}}, tmp_path / "other.pth")
    with pytest.raises(UserError, match="not a PaQ-2-PiQ"):
        get_model(str(tmp_path / "other.pth"), "cpu")

    torch.save({"model": _Pickled()}, tmp_path / "evil.pth")
    with pytest.raises(UserError, match="cannot read") as info:
        get_model(str(tmp_path / "evil.pth"), "cpu")
    message = str(info.value)  # one line, without torch's advice to run the pickle
    assert "refused" in message and "weights_only" not in message and "\n" not in message
    with pytest.raises(UserError, match="not found"):
        get_model(str(tmp_path / "missing.pth"), "cpu")


class _Pickled:
    """Any pickled object: torch.load(weights_only=True) must refuse to build it."""


def _fake_hf_cache(root: Path, repo: str, filename: str, payload: object) -> None:
    folder = root / f"models--{repo.replace('/', '--')}"
    commit = "0123456789abcdef0123456789abcdef01234567"
    (folder / "refs").mkdir(parents=True)
    (folder / "refs" / "main").write_text(commit)
    (folder / "snapshots" / commit).mkdir(parents=True)
    torch.save(payload, folder / "snapshots" / commit / filename)


def test_hub_reference_reads_the_local_cache_only(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    state = _trained_looking_model().state_dict()
    _fake_hf_cache(tmp_path / "hub", "someone/iqa-weights", "p2p.pth", state)
    model = get_model("hf-hub:someone/iqa-weights/p2p.pth", "cpu")
    assert torch.equal(model.state_dict()["head.8.weight"], state["head.8.weight"])
    with pytest.raises(MissingDependencyError, match="local Hugging Face cache"):
        get_model("hf-hub:someone/iqa-weights/absent.pth", "cpu")
    with pytest.raises(UserError, match="hub reference"):
        get_registry().create("indicator", "paq2piq", {"weights": "hf-hub:just-a-name"})


def test_map_has_the_image_size_on_non_square_input() -> None:
    ind = PaQ2PiQ(weights="random", device="cpu")
    image = _image(160, 96)
    (q,) = ind.score([image])
    assert q.map.shape == (96, 160) and q.map.dtype == np.float32
    assert q.details["raw_map"].shape == (20, 20)
    assert q.score == pytest.approx(float(np.clip(q.details["raw_score"] / 100, 0, 1)))
    nearest = PaQ2PiQ(weights="random", device="cpu", interpolation="nearest").score([image])[0]
    expected = np.clip(q.details["raw_map"] / 100, 0, 1)
    assert nearest.map[2, 4] == pytest.approx(expected[0, 0]) and nearest.map[-1, -1] == pytest.approx(
        expected[-1, -1]
    )


def test_box_by_box_equals_batched() -> None:
    model = _trained_looking_model()
    ind = PaQ2PiQ(weights="random", device="cpu")
    image = _image(130, 70, seed=5)
    pixels = ind.pixels(image)
    boxes = boxes_for(pixels.shape[2], pixels.shape[3])
    with torch.inference_mode():
        batched = model(pixels, boxes)
        features = model.features(pixels)  # the body is per image; RoIPool + head run per box
        one_by_one = torch.stack([model.score_boxes(features, box[None])[0] for box in boxes])
    torch.testing.assert_close(one_by_one, batched, rtol=1e-5, atol=1e-5)


def test_boxes_follow_each_image() -> None:
    # the original caches the first image's boxes; here a second size gets its own
    ind = PaQ2PiQ(weights="random:1", device="cpu")
    small, large = _image(64, 96, 1), _image(200, 120, 2)
    alone = ind.score([large])[0]
    after = ind.score([small, large])[1]
    np.testing.assert_allclose(after.details["raw_map"], alone.details["raw_map"], atol=1e-5)


def test_size_cap_and_tiny_images() -> None:
    ind = PaQ2PiQ(weights="random", device="cpu", max_side=128)
    assert tuple(ind.pixels(_image(400, 200)).shape) == (1, 3, 64, 128)
    assert tuple(PaQ2PiQ(weights="random", max_side=None).pixels(_image(400, 200)).shape) == (1, 3, 200, 400)
    assert ind.score([_image(17, 9)])[0].map.shape == (9, 17)  # upscaled to 64 px inside


def test_conformance() -> None:
    check_indicator(PaQ2PiQ(weights="random", device="cpu"))
    check_part("indicator", "paq2piq", weights="random", device="cpu")
    recipe = check_recipe("paq2piq-refine")
    perceptual = recipe.part("perceptual")
    assert perceptual is not None and perceptual.part == "paq2piq"


def test_plugins_command_shows_the_licence() -> None:
    result = CliRunner().invoke(cli, ["plugins"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    start = next(i for i, x in enumerate(lines) if x.startswith("grefine-paq2piq"))
    block = []
    for line in lines[start + 1 :]:
        if not line.startswith("  "):
            break
        block.append(line)
    assert "  indicator:paq2piq" in block
    assert any("licence" in x and "CC BY-NC" in x and "non-commercial" in x for x in block), block
    assert "indicator" in CliRunner().invoke(cli, ["list", "indicator", "-f", "paq2piq"]).output


def test_cli_evaluate_with_paq2piq(tmp_path: Path) -> None:
    rows = ["image,mos_quality"]
    for i in range(4):
        _image(48 + 16 * i, 40, seed=i).save(tmp_path / f"img{i}.png")
        rows.append(f"img{i}.png,{1 + i}")
    (tmp_path / "mos.csv").write_text("\n".join(rows) + "\n")
    recipe = tmp_path / "random.toml"
    recipe.write_text(
        'name = "paq2piq-random"\n[indicators.perceptual]\n'
        'part = "paq2piq"\nweights = "random"\ndevice = "cpu"\n'
    )
    out = tmp_path / "out"
    args = ["evaluate", str(tmp_path / "mos.csv"), "--indicator", "paq2piq", "--recipe", str(recipe)]
    result = CliRunner().invoke(cli, [*args, "--out", str(out), "--save-maps"])
    assert result.exit_code == 0, result.output
    assert "MOS column: mos_quality" in result.stdout and "on 4/4 images" in result.stdout
    saved = json.loads((out / "evaluation.json").read_text())
    assert saved["indicator"] == "paq2piq" and saved["n_scored"] == 4


def test_missing_default_weights_is_one_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "empty-hub"))
    _image(64, 64).save(tmp_path / "a.png")
    args = ["score", str(tmp_path / "a.png"), "--indicator", "paq2piq", "--out", str(tmp_path / "o")]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 2, result.output
    assert "fetch-weights" in result.stderr and "Traceback" not in result.output


def test_fetch_weights_lines(tmp_path: Path) -> None:
    assert PaQ2PiQ(weights="random:2").fetch_weights() == ["random weights: nothing to fetch"]
    local = PaQ2PiQ(weights=str(tmp_path / "random.pth")).fetch_weights()
    assert local[0].startswith("local file")


def test_entry_module_list_and_doctor_import_no_torch() -> None:
    """`grefine doctor` builds the paq2piq part: that must not import torch (issue 20, item 14)."""
    from grefine_kit.testing import check_plugin_light

    check_plugin_light("grefine_paq2piq", distribution="grefine-paq2piq")


@pytest.mark.parametrize("device", ["gpu", "cuda:x", "", "CPU"])
def test_a_bad_device_is_refused_at_construction_without_torch(device: str) -> None:
    with pytest.raises(ValueError, match="device must be"):
        PaQ2PiQ(weights="random", device=device)
