"""Learning PQ-Map's prompts from MOS on the tiny backbone: the loss falls, the checkpoints load back."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from grefine_kit.cli import cli
from grefine_kit.errors import UserError
from grefine_kit.evaluation import MosRow
from grefine_kit.images.loading import load_image
from grefine_kit.indicators.pq_map import PQMap
from grefine_kit.testing import TINY_BACKBONE
from grefine_kit.training import train_pq_prompts


@pytest.fixture
def rated(tmp_path: Path) -> list[MosRow]:
    """12 noisy grey images whose MOS rises with brightness."""
    rng = np.random.default_rng(0)
    rows = []
    for i in range(12):
        pixels = np.clip(rng.normal(20 + 18 * i, 30, (40, 56, 3)), 0, 255).astype(np.uint8)
        Image.fromarray(pixels).save(tmp_path / f"{i}.png")
        rows.append(MosRow(tmp_path / f"{i}.png", 1 + i / 3))
    return rows


def test_training_fits_the_mos_and_checkpoints_reproduce_the_scores(rated: list[MosRow], tmp_path: Path):
    pq = PQMap(**TINY_BACKBONE, device="cpu")
    untrained = [q.score for q in pq.score([load_image(r.image) for r in rated])]
    report = train_pq_prompts(rated, pq, tmp_path / "out", epochs=30, lr=5e-2, progress=False)
    assert report.losses[-1] < 0.5 * report.losses[0]
    assert report.train_srcc > 0.9 and report.n_train == 12 and report.n_failed == 0
    assert [p.name for p in report.checkpoints] == [
        "overall.pth",
        "technical.pth",
        "rationality.pth",
        "naturalness.pth",
    ]
    trained = PQMap(**TINY_BACKBONE, device="cpu", prompt_checkpoints=tuple(map(str, report.checkpoints)))
    scores = [q.score for q in trained.score([load_image(r.image) for r in rated])]
    assert scores == pytest.approx([s for _, s in report.predictions], abs=1e-4)
    assert scores != pytest.approx(untrained, abs=1e-3)
    saved = json.loads((tmp_path / "out" / "training.json").read_text())
    assert saved["settings"]["epochs"] == 30 and len(saved["losses"]) == 30


def test_held_out_images_and_bad_settings(rated: list[MosRow], tmp_path: Path):
    pq = PQMap(**TINY_BACKBONE, device="cpu")
    report = train_pq_prompts(rated, pq, tmp_path / "o", epochs=2, val_fraction=0.25, progress=False)
    assert (report.n_train, report.n_val) == (9, 3) and report.val_srcc is not None
    with pytest.raises(UserError, match="epochs >= 1"):
        train_pq_prompts(rated, pq, tmp_path / "o", epochs=0, progress=False)
    with pytest.raises(UserError, match="at least 3 readable"):
        missing = [MosRow(tmp_path / "missing.png", float(i)) for i in range(4)]
        train_pq_prompts(missing, pq, tmp_path / "o", progress=False)


def test_cli_train_pq(rated: list[MosRow], tmp_path: Path):
    csv_path = tmp_path / "db.csv"
    csv_path.write_text("image,mos\n" + "".join(f"{r.image.name},{r.mos}\n" for r in rated))
    result = CliRunner().invoke(
        cli, ["train-pq", str(csv_path), "--recipe", "tiny", "--epochs", "3", "--out", str(tmp_path / "ck")]
    )
    assert result.exit_code == 0, result.output
    assert "prompt_checkpoints = [" in result.stdout and (tmp_path / "ck" / "overall.pth").is_file()
    # off a terminal (auto): a line per image encoded, then one per epoch with its loss
    lines = result.stderr.splitlines()
    encoded = [line for line in lines if line.startswith("encode [")]
    assert len(encoded) == 12 and all(": ok (" in line for line in encoded), result.stderr
    epochs = [line.split(" (")[0] for line in lines if line.startswith("train [")]
    saved = json.loads((tmp_path / "ck" / "training.json").read_text())
    assert epochs == [f"train [{k}/3] epoch {k}: loss {saved['losses'][k - 1]:.4f}" for k in (1, 2, 3)]
    # jsonl: the events alone on stdout, with each epoch's loss; the recipe lines on stderr
    args = ["train-pq", str(csv_path), "--recipe", "tiny", "--epochs", "2", "--log-format", "jsonl"]
    again = CliRunner().invoke(cli, [*args, "--out", str(tmp_path / "j")])
    assert again.exit_code == 0, again.output
    events = [json.loads(line) for line in again.stdout.splitlines()]
    kinds = [(e["event"], e["kind"]) for e in events]
    encode = [("start", "encode"), *[("item", "encode")] * 12, ("end", "encode")]
    train = [("start", "train"), ("item", "train"), ("item", "train"), ("end", "train")]
    assert kinds == [*encode, *train]
    losses = json.loads((tmp_path / "j" / "training.json").read_text())["losses"]
    assert [e["loss"] for e in events if e["kind"] == "train" and e["event"] == "item"] == losses
    assert "prompt_checkpoints = [" in again.stderr


def test_separate_factors_train_one_independent_checkpoint_each(rated: list[MosRow], tmp_path: Path):
    import torch

    pq = PQMap(**TINY_BACKBONE, device="cpu")
    sep = train_pq_prompts(rated, pq, tmp_path / "s", epochs=20, lr=5e-2, progress=False, factors="separate")
    joint = train_pq_prompts(rated, pq, tmp_path / "j", epochs=20, lr=5e-2, progress=False)
    assert sep.losses[-1] < 0.5 * sep.losses[0] and len(sep.checkpoints) == 4
    saved = json.loads((tmp_path / "s" / "training.json").read_text())
    assert saved["settings"]["factors"] == "separate"
    ctx = [torch.load(p, weights_only=True)["params"]["prompt_learner.ctx"] for p in sep.checkpoints]
    ctx_joint = torch.load(joint.checkpoints[1], weights_only=True)["params"]["prompt_learner.ctx"]
    assert not torch.allclose(ctx[1], ctx_joint, atol=1e-4)  # a different objective, a different fit
    # each factor alone ranks the images like the MOS (it was fitted to it on its own)
    from grefine_kit.evaluation import srcc

    trained = PQMap(**TINY_BACKBONE, device="cpu", prompt_checkpoints=tuple(map(str, sep.checkpoints)))
    results = trained.score([load_image(r.image) for r in rated])
    for factor in ("overall", "technical"):
        assert srcc([q.details["factors"][factor] for q in results], [r.mos for r in rated]) > 0.8
    with pytest.raises(UserError, match="factors must be"):
        train_pq_prompts(rated, pq, tmp_path / "x", epochs=1, progress=False, factors="each")
