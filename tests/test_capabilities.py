"""Capabilities on the part base: declared members with defaults, asked instead of probed.

A part derived from ``PartBase`` declares ``name``, ``needs_prompt``, ``quality_kind``,
``score_range``, ``required_weights()`` and ``preflight()``; a plugin part that only follows
its kind's protocol gets the defaults through ``as_part``. ``grefine doctor`` and ``recipe
validate`` list a part's missing hub weights from ``required_weights()`` alone.
"""

from __future__ import annotations

import ast
import math
import os
import subprocess
import sys
from collections.abc import Sequence
from importlib import metadata
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pytest
from PIL import Image

from grefine_kit.evaluation.mos import indicator_kind
from grefine_kit.metrics.base import describe
from grefine_kit.parts.base import FILE, HubWeights, Missing, PartBase, as_part, capabilities
from grefine_kit.readiness import preflight
from grefine_kit.testing import check_capabilities, check_indicator, check_metric
from grefine_kit.types import QualityMap

ROOT = Path(__file__).resolve().parents[1]


class ProtocolOnlyIndicator:
    """A plugin indicator that follows the Indicator protocol and nothing else."""

    needs_prompt = True

    def score(self, images: Sequence[Image.Image], prompts: Sequence[str] | None = None) -> list[QualityMap]:
        return [QualityMap(map=np.full((im.height, im.width), 0.5, np.float32), score=0.5) for im in images]


class ProtocolOnlyMetric:
    name = "plain-metric"
    lower_better = False
    score_range = (0, 10)
    needs_prompt = False

    def score(self, images: Sequence[Image.Image], prompts: Sequence[str] | None = None) -> list[float]:
        return [float(np.asarray(im).mean() / 25.5) for im in images]


class HubIndicator(PartBase):
    """A PartBase indicator that loads one hub file and checks a local file."""

    name: ClassVar[str] = "hub-indicator"

    def __init__(self, extra_file: str = "") -> None:
        self.extra_file = extra_file

    def required_weights(self) -> list[HubWeights]:
        return [HubWeights("test-org/test-weights", ("model.safetensors",), label="test weights")]

    def preflight(self) -> list[Missing]:
        if self.extra_file and not Path(self.extra_file).is_file():
            return [Missing(f"test file {self.extra_file}", kind=FILE, fix="fix extra_file")]
        return []

    def score(self, images: Sequence[Image.Image], prompts: Sequence[str] | None = None) -> list[QualityMap]:
        return ProtocolOnlyIndicator().score(images)


def test_protocol_only_parts_get_the_defaults_and_their_protocol_members() -> None:
    indicator = as_part(ProtocolOnlyIndicator())
    assert indicator.needs_prompt is True  # the Indicator protocol's member, read as declared
    assert indicator.quality_kind == "alignment"  # default: follows needs_prompt
    assert indicator.score_range == (-math.inf, math.inf) and indicator.needs_region is False
    assert indicator.required_weights() == [] and indicator.preflight() == []
    assert indicator.name == "ProtocolOnlyIndicator"
    metric = as_part(ProtocolOnlyMetric())
    assert (metric.name, metric.score_range, metric.needs_prompt) == ("plain-metric", (0.0, 10.0), False)
    assert metric.quality_kind == "perceptual"
    for part in (ProtocolOnlyIndicator(), ProtocolOnlyMetric(), object()):
        check_capabilities(part)
    check_indicator(ProtocolOnlyIndicator())
    check_metric(ProtocolOnlyMetric())


def test_the_toolkit_uses_the_capabilities_of_protocol_only_parts() -> None:
    info = describe(ProtocolOnlyMetric())
    assert (info.name, info.score_range, info.needs_prompt) == ("plain-metric", (0.0, 10.0), False)
    assert indicator_kind(ProtocolOnlyIndicator()) == "alignment"
    assert capabilities(ProtocolOnlyIndicator()).needs_prompt is True
    assert preflight.check_parts({"p": ProtocolOnlyIndicator(), "q": None}) == []


def test_declared_members_override_the_defaults() -> None:
    from grefine_kit.indicators.pq_map import PQMap
    from grefine_kit.metrics.piqe import PiqeMetric

    pq = PQMap(model="grefine-tiny", weights="random")
    assert (pq.name, pq.needs_prompt, pq.quality_kind) == ("pq-map", False, "perceptual")
    assert pq.required_weights() == []  # random weights: nothing from the hub
    assert PQMap().required_weights()[0].repo == "timm/vit_base_patch16_clip_224.openai"
    metric = PiqeMetric()
    assert isinstance(metric, PartBase) and metric.score_range == (0.0, 100.0)
    check_capabilities(pq)
    check_capabilities(PQMap())


def test_check_parts_lists_declared_weights_until_they_are_in_the_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    part = HubIndicator(extra_file=str(tmp_path / "absent.txt"))
    found = preflight.check_parts({"indicators.perceptual": part})
    assert found == [
        Missing("test weights", "indicators.perceptual", preflight.WEIGHTS),
        Missing(f"test file {tmp_path / 'absent.txt'}", "indicators.perceptual", FILE, "fix extra_file"),
    ]
    snapshot = tmp_path / "hub" / "models--test-org--test-weights" / "snapshots" / "abc"
    snapshot.mkdir(parents=True)
    (snapshot.parent.parent / "refs").mkdir()
    (snapshot.parent.parent / "refs" / "main").write_text("abc")
    (snapshot / "model.safetensors").write_bytes(b"x")
    (tmp_path / "absent.txt").write_text("now here")
    assert preflight.check_parts({"indicators.perceptual": part}) == []


def test_doctor_lists_an_in_process_plugins_missing_weights(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, register_plugin: Any
) -> None:
    from grefine_kit import hookimpl
    from grefine_kit.cli.doctor_commands import recipe_problems

    class Plugin:
        @staticmethod
        @hookimpl
        def register_indicators(register: Any) -> None:
            register("hub-indicator", HubIndicator, summary="test part with hub weights")

    register_plugin(Plugin(), name="hub-plugin")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    tiny = (ROOT / "grefine_kit" / "recipes" / "tiny.toml").read_text("utf-8")
    start = tiny.index("[indicators.perceptual]")
    end = tiny.index("[indicators.alignment]")
    recipe = tmp_path / "hub.toml"
    recipe.write_text(
        tiny[:start] + '[indicators.perceptual]\npart = "hub-indicator"\n\n' + tiny[end:], "utf-8"
    )
    problems = recipe_problems(str(recipe))
    assert problems == [f"test weights (indicators.perceptual) -> grefine fetch-weights --recipe {recipe}"]


def _paq2piq_env(tmp_path: Path) -> dict[str, str]:
    """This checkout's grefine_kit and paq2piq plugin first on the path, an empty hub cache."""
    env = {k: v for k, v in os.environ.items() if not k.endswith("_OFFLINE")}
    path = os.pathsep.join([str(ROOT), str(ROOT / "plugins" / "grefine-paq2piq")])
    env.update(PYTHONPATH=path, HF_HOME=str(tmp_path / "hf"), HF_HUB_OFFLINE="1")
    env.pop("HF_HUB_CACHE", None)
    return env


needs_paq2piq = pytest.mark.skipif(
    not any(d.metadata["Name"] == "grefine-paq2piq" for d in metadata.distributions()),
    reason="the grefine-paq2piq plugin is not installed (pip install ./plugins/grefine-paq2piq)",
)


@needs_paq2piq
@pytest.mark.parametrize(
    "command", [["doctor", "--recipe", "paq2piq-refine"], ["recipe", "validate", "paq2piq-refine"]]
)
def test_doctor_and_validate_list_the_paq2piq_weights(tmp_path: Path, command: list[str]) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "grefine_kit.cli", *command],
        capture_output=True,
        text=True,
        env=_paq2piq_env(tmp_path),
        cwd=tmp_path,
        timeout=120,
    )
    assert proc.returncode == 1, proc.stdout + proc.stderr
    line = next(ln for ln in proc.stdout.splitlines() if "PaQ-2-PiQ weights" in ln)
    assert "chaofengc/IQA-PyTorch-Weights" in line and "(indicators.perceptual)" in line, line
    assert "grefine fetch-weights --recipe paq2piq-refine" in line, line


@needs_paq2piq
def test_doctor_imports_no_torch_with_a_plugin_installed(tmp_path: Path) -> None:
    code = (
        "import sys\n"
        "from grefine_kit.cli import cli\n"
        "try:\n"
        "    cli(['doctor'], standalone_mode=False)\n"
        "except SystemExit:\n"
        "    pass\n"
        "heavy = sorted(m for m in ('torch', 'open_clip', 'diffusers', 'transformers') if m in sys.modules)\n"
        "print('HEAVY', heavy)\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=_paq2piq_env(tmp_path), timeout=120
    )
    assert "recipe paq2piq-refine: missing" in proc.stdout, proc.stdout + proc.stderr
    assert "HEAVY []" in proc.stdout, proc.stdout + proc.stderr


#: capabilities the toolkit once probed for on its own parts; reading them goes through as_part
_CAPABILITY_NAMES = {
    "needs_prompt",
    "needs_region",
    "quality_kind",
    "score_range",
    "preflight",
    "required_weights",
    "requires",
    "fetch_weights",
    "extra_files",
    "licence",
    "name",
    "parser",
    "parser_options",
    "prompt_checkpoints",
    "revision",
    "device",
}


def test_no_getattr_probing_of_part_capabilities() -> None:
    probes = []
    for path in sorted((ROOT / "grefine_kit").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text("utf-8"))):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Name)
                and node.func.id in ("getattr", "hasattr")
                and len(node.args) >= 2
                and isinstance(node.args[1], ast.Constant)
                and node.args[1].value in _CAPABILITY_NAMES
            ):
                probes.append(f"{path.relative_to(ROOT)}:{node.lineno} {ast.unparse(node)}")
    allowed = {  # ``name`` read off objects that are not parts
        "grefine_kit/testing/engine_check.py",  # an engine: the check asserts its protocol
        "grefine_kit/errors.py",  # an attrs Attribute inside a validator's TypeError
        "grefine_kit/images/loading.py",  # an open file object
    }
    assert [p for p in probes if p.split(":")[0] not in allowed or "'name'" not in p] == []


def test_preflight_knows_no_parts_internals() -> None:
    text = (ROOT / "grefine_kit" / "readiness" / "preflight.py").read_text("utf-8")
    assert "getattr(" not in text and "hasattr(" not in text
    assert "ClipIndicator" not in text and "_DiffusersStage" not in text
