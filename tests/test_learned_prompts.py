"""The bundled learned prompts: package data, checksums, names in recipes, fetch-weights report."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from grefine_kit.cli import cli
from grefine_kit.errors import UserError
from grefine_kit.indicators import learned_prompts
from grefine_kit.indicators.learned_prompts import (
    BUILTIN_PROMPT_SETS,
    builtin_prompt_dir,
    resolve_prompt_checkpoints,
    verify_builtin_prompts,
)
from grefine_kit.indicators.pq_map import PQMap
from grefine_kit.testing.conformance import sample_images

TINY = {"model": "grefine-tiny", "weights": "random", "device": "cpu"}
#: the checksums published with the reference files (Q-Future/Q-Refine @ 65a82f1)
EXPECTED_SHA256 = {
    "PQ-overall.pth": "7368cf8e1a0bac656e7c2b9cbffcd2b23587a06c9615e9f56f0849c5010611cc",
    "PQ-technical.pth": "8b674a47a44e78e09bfd9a1ada66f2c49cb280cb59afdceab500b63f758343a2",
    "PQ-rational.pth": "ed30d8c34799524c213f274ffa83d86cd0adc31b461437bd9d57b04e882d936c",
    "PQ-natural.pth": "e7546e0470f95a15176d5c8f897aaa0d65c2dbcbebfcf0a81295115845799e30",
}


def test_bundled_files_licence_and_checksums():
    folder = builtin_prompt_dir("g-refine")
    paths = resolve_prompt_checkpoints("g-refine")
    assert [p.name for p in paths] == list(BUILTIN_PROMPT_SETS["g-refine"])
    for p in paths:
        assert hashlib.sha256(p.read_bytes()).hexdigest() == EXPECTED_SHA256[p.name]
        params = torch.load(p, map_location="cpu", weights_only=True)["params"]
        assert params["prompt_learner.ctx"].shape == (2, 16, 512)
        assert params["prompt_learner.token_prefix"].shape == (2, 1, 512)
        assert params["prompt_learner.token_suffix"].shape == (2, 60, 512)
    assert "Apache License" in (folder / "LICENSE").read_text()
    notice = (folder / "NOTICE").read_text()
    assert "Q-Future/Q-Refine" in notice and "65a82f17e4e660576bba796ca8ea9516f2d5381f" in notice
    assert sorted(verify_builtin_prompts("g-refine")) == sorted([*EXPECTED_SHA256, "LICENSE"])
    assert resolve_prompt_checkpoints("builtin:g-refine") == paths
    assert resolve_prompt_checkpoints("zero-shot") == () == resolve_prompt_checkpoints([])


def test_altered_bundle_is_reported(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    copy = tmp_path / "g-refine"
    shutil.copytree(builtin_prompt_dir("g-refine"), copy)
    (copy / "PQ-rational.pth").write_bytes(b"not a checkpoint")
    monkeypatch.setattr(learned_prompts, "builtin_prompt_dir", lambda name: copy)
    with pytest.raises(UserError, match=r"PQ-rational\.pth does not match SHA256SUMS"):
        verify_builtin_prompts("g-refine")
    (copy / "PQ-rational.pth").unlink()
    with pytest.raises(UserError, match="missing"):
        verify_builtin_prompts("g-refine")


def test_fetch_report_names_the_bundled_prompts():
    lines = PQMap(**TINY, prompt_checkpoints="g-refine").fetch_weights()
    assert any(
        "prompts 'g-refine': bundled with grefine_kit (4 learned-prompt files" in line for line in lines
    )
    assert any("zero-shot" in line for line in PQMap(**TINY).fetch_weights())
    with pytest.raises(UserError, match="not found"):
        PQMap(**TINY, prompt_checkpoints=["/nonexistent/a.pth"] * 4).fetch_weights()


def test_cli_fetch_weights_and_recipe_show(tmp_path: Path):
    recipe = tmp_path / "r.toml"
    recipe.write_text(
        'name = "r"\n[indicators.perceptual]\npart = "pq-map"\nmodel = "grefine-tiny"\n'
        'weights = "random"\nprompt_checkpoints = "g-refine"\n[combiner]\npart = "perceptual"\n'
    )
    out = CliRunner().invoke(cli, ["fetch-weights", "--recipe", str(recipe)])
    assert out.exit_code == 0, out.output
    assert "prompts 'g-refine': bundled with grefine_kit" in out.output
    for name in ("g-refine", "g-refine-perceptual", "g-refine-stage1"):
        shown = CliRunner().invoke(cli, ["recipe", "show", name])
        assert shown.exit_code == 0 and 'prompt_checkpoints = "g-refine"' in shown.output


def test_prompts_that_do_not_fit_the_backbone_fail_clearly(tmp_path: Path):
    with pytest.raises(UserError, match=r"PQ-overall\.pth: prompt of .* width 512.* does not fit.*zero-shot"):
        PQMap(**TINY, prompt_checkpoints="g-refine").score(sample_images())
    recipe = tmp_path / "bad.toml"
    recipe.write_text(
        'name = "bad"\n[indicators.perceptual]\npart = "pq-map"\nprompt_checkpoints = "g-refnie"\n'
        '[combiner]\npart = "perceptual"\n'
    )
    bad = CliRunner().invoke(cli, ["recipe", "validate", str(recipe)])
    assert bad.exit_code == 2 and "not a bundled prompt set" in bad.output and "Traceback" not in bad.output
