"""grefine-pyiqa: registration without importing pyiqa, pyiqa's own facts, and the metrics that
need no download (piqe, entropy) against pyiqa called directly."""

from __future__ import annotations

import math
import subprocess
import sys
import urllib.error

import numpy as np
import pytest

INSTALL = "pip install ./plugins/grefine-pyiqa (pulls pyiqa, non-commercial licence)"
pyiqa = pytest.importorskip("pyiqa", reason=f"pyiqa is not installed: {INSTALL}")
grefine_pyiqa = pytest.importorskip("grefine_pyiqa", reason=f"the plugin is not installed: {INSTALL}")

from grefine_pyiqa._table import DATASET_LEVEL, NR_METRICS, parse_range  # noqa: E402

from grefine_kit.testing import check_metric  # noqa: E402


def _astronaut(noise: float = 0.0, size: int = 128):
    from PIL import Image
    from skimage import data

    rng = np.random.default_rng(0)
    array = np.asarray(Image.fromarray(data.astronaut()).resize((size, size)), np.float32)
    array = np.clip(array + rng.normal(0.0, noise, array.shape), 0, 255).astype(np.uint8)
    return Image.fromarray(array)


def test_table_is_the_installed_pyiqa_facts():
    from pyiqa.default_model_configs import DEFAULT_CONFIGS

    installed = {n for n in pyiqa.list_models(metric_mode="NR") if n not in DATASET_LEVEL}
    assert installed == set(NR_METRICS), "regenerate grefine_pyiqa/_table.py for this pyiqa version"
    for name, (lower_better, score_range, arch) in NR_METRICS.items():
        config = DEFAULT_CONFIGS[name]
        assert bool(config.get("lower_better", False)) == lower_better, name
        assert config.get("score_range") == score_range, name
        assert config["metric_opts"]["type"] == arch, name


def test_parse_range():
    assert parse_range("~0, ~100") == (0.0, 100.0)
    assert parse_range("-2, 2") == (-2.0, 2.0)
    assert parse_range("0, ~") == (0.0, math.inf)


def test_registered_from_the_entry_point_with_licence(grefine_registry):
    entry = grefine_registry.get("metric", "pyiqa:musiq")
    assert entry.distribution == "grefine-pyiqa"
    assert "PolyForm Noncommercial" in entry.licence
    assert entry.metadata["lower_better"] is False and entry.metadata["score_range"] == (0.0, 100.0)
    assert grefine_registry.get("metric", "pyiqa:brisque").metadata["lower_better"] is True
    assert "pyiqa:fid" not in grefine_registry.names("metric")


def test_cli_lists_pyiqa_metrics_and_the_licence_without_importing_pyiqa():
    code = (
        "import sys\nfrom grefine_kit.cli import main\n"
        "try:\n    main(['list', 'metric', '-f', 'pyiqa:p*'])\nexcept SystemExit:\n    pass\n"
        "try:\n    main(['plugins'])\nexcept SystemExit:\n    pass\n"
        "print('PYIQA_IMPORTED', 'pyiqa' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert "pyiqa:piqe" in out and "↓ [0, 100]" in out
    assert "licence: pyiqa is licensed under the PolyForm Noncommercial License 1.0.0" in out
    assert "PYIQA_IMPORTED False" in out


@pytest.mark.parametrize("name", ["piqe", "entropy"])
def test_no_download_metrics_match_pyiqa_and_conform(name):
    import torch
    from grefine_pyiqa.metric import to_pyiqa_tensor

    from grefine_kit.parts.registry import create_part

    metric = create_part("metric", f"pyiqa:{name}", device="cpu")
    assert metric.name == f"pyiqa:{name}" and not metric.needs_prompt
    image = _astronaut()
    direct = pyiqa.create_metric(name, device=torch.device("cpu"))
    expected = float(direct(to_pyiqa_tensor(image)).reshape(-1)[0])
    assert math.isclose(metric.score([image])[0], expected, rel_tol=1e-5)
    assert metric.lower_better == bool(direct.lower_better)
    check_metric(metric)


def test_piqe_prefers_the_clean_image():
    from grefine_kit.parts.registry import create_part

    metric = create_part("metric", "pyiqa:piqe", device="cpu")
    clean, noisy = metric.score([_astronaut(size=256), _astronaut(noise=25.0, size=256)])
    assert metric.lower_better and clean < noisy


def test_input_conversion_matches_pyiqa_loader(tmp_path):
    from grefine_pyiqa.metric import to_pyiqa_tensor
    from pyiqa.utils import imread2tensor

    image = _astronaut(size=37)
    image.save(tmp_path / "a.png")
    ours = to_pyiqa_tensor(image)
    theirs = imread2tensor(str(tmp_path / "a.png")).unsqueeze(0)
    assert ours.shape == theirs.shape == (1, 3, 37, 37)
    assert np.allclose(ours.numpy(), theirs.numpy(), atol=1e-6)


def test_unknown_name_and_missing_weights_are_clear_errors(monkeypatch, tmp_path):
    from grefine_pyiqa.metric import PyiqaMetric

    from grefine_kit.errors import MissingDependencyError, UserError
    from grefine_kit.parts.registry import create_part

    with pytest.raises(ValueError, match="did you mean"):
        PyiqaMetric(metric="musiq2")
    with pytest.raises(UserError):
        create_part("metric", "pyiqa:piqe", no_such_option=1)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))  # an empty weights cache: brisque must download

    def offline(url, *args, **kwargs):  # tests never touch the network, even where there is one
        raise urllib.error.URLError(f"offline test: refused {url}")

    monkeypatch.setattr("pyiqa.utils.download_util.download_url_to_file", offline)
    metric = create_part("metric", "pyiqa:brisque", device="cpu")
    with pytest.raises(MissingDependencyError, match="pyiqa:brisque"):
        metric.score([_astronaut()])


def test_entry_module_list_and_doctor_stay_light():
    from grefine_kit.testing import check_plugin_light

    check_plugin_light("grefine_pyiqa", distribution="grefine-pyiqa")
