"""Loading a diffusers folder passes the dtype under the name this diffusers expects (no
``torch_dtype`` deprecation warning on current releases)."""

from __future__ import annotations

import warnings
from pathlib import Path

from grefine_kit.stages.loading import clear_cache, dtype_kwarg, load_pipeline
from grefine_kit.testing.tiny_diffusers import save_tiny_pipeline


def test_folder_load_emits_no_torch_dtype_deprecation(tmp_path: Path) -> None:
    import diffusers.utils.deprecation_utils as dep

    assert list(dtype_kwarg("x")) == (["dtype"] if hasattr(dep, "_resolve_dtype") else ["torch_dtype"])
    folder = save_tiny_pipeline(tmp_path / "m", task="img2img")
    clear_cache()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        pipe = load_pipeline(f"local-dir:{folder}", "img2img", device="cpu", dtype="float32")
    assert type(pipe).__name__ == "StableDiffusionXLImg2ImgPipeline"
    assert not [w for w in caught if "torch_dtype" in str(w.message)], [str(w.message) for w in caught]
    clear_cache()


def test_old_diffusers_gets_torch_dtype(monkeypatch) -> None:
    import diffusers.utils.deprecation_utils as dep

    monkeypatch.delattr(dep, "_resolve_dtype", raising=False)
    assert dtype_kwarg("x") == {"torch_dtype": "x"}
