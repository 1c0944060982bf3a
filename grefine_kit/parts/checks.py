"""Checks a part's ``preflight()`` calls: its hub weights in the local cache, its device.

Each answers from the file system alone (the Hugging Face cache layout on disk, the NVIDIA
driver's ``/proc`` entry), so ``grefine doctor`` and the runners' pre-flight import no model
library. Findings are :class:`~grefine_kit.parts.base.Missing` values.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable
from pathlib import Path

from grefine_kit.parts.base import DEVICE, WEIGHTS, HubWeights, Missing

__all__ = ["check_device", "check_weights", "cuda_available", "hf_cache_dir", "weights_cached"]


def hf_cache_dir() -> Path:
    """The Hugging Face hub cache folder (HF_HUB_CACHE, else HF_HOME/hub, else ~/.cache/...)."""
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"]).expanduser()
    home = os.environ.get("HF_HOME") or os.path.join(
        os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")), "huggingface"
    )
    return Path(home).expanduser() / "hub"


def _snapshot(repo_id: str, revision: str = "") -> Path | None:
    """The cached snapshot folder of a hub model repo (``models--org--name/snapshots/<sha>``)."""
    repo = hf_cache_dir() / ("models--" + repo_id.replace("/", "--"))
    ref = repo / "refs" / (revision or "main")
    if ref.is_file():
        folder = repo / "snapshots" / ref.read_text().strip()
        return folder if folder.is_dir() else None
    direct = repo / "snapshots" / revision if revision else None  # a commit hash given as revision
    if direct is not None and direct.is_dir():
        return direct
    snapshots = sorted((repo / "snapshots").glob("*")) if not revision else []
    return snapshots[-1] if snapshots else None


def weights_cached(weights: HubWeights) -> bool:
    """True when ``weights`` are in the local Hugging Face cache: one of its files in the
    cached snapshot, or (no files named) a complete diffusers pipeline folder."""
    folder = _snapshot(weights.repo, weights.revision)
    if folder is None:
        return False
    if weights.files:
        return any((folder / name).is_file() for name in weights.files)
    return (folder / "model_index.json").is_file() and _components_present(folder)


def check_weights(weights: Iterable[HubWeights], where: str) -> list[Missing]:
    """A ``weights`` finding for each of ``weights`` not in the local cache."""
    return [Missing(w.what, where, WEIGHTS) for w in weights if not weights_cached(w)]


def cuda_available() -> bool | None:
    """True/False when the answer is certain without torch; None when only torch can tell.

    No NVIDIA kernel driver (``/proc/driver/nvidia``) and no ``nvidia-smi`` means no CUDA.
    """
    if os.environ.get("CUDA_VISIBLE_DEVICES", None) in ("", "-1"):
        return False
    if sys.platform.startswith("linux"):
        if not os.path.exists("/proc/driver/nvidia/version") and not _which("nvidia-smi"):
            return False
    return None


def _which(name: str) -> bool:
    import shutil

    return shutil.which(name) is not None


def check_device(device: str, where: str = "") -> list[Missing]:
    """A ``cuda``/``mps`` device this machine cannot have (``auto`` and ``cpu`` are always there)."""
    if device.startswith("cuda"):
        known = cuda_available()
        if known is None:  # a driver is there: ask torch (it is about to be imported anyway)
            import torch

            known = bool(torch.cuda.is_available())
        if not known:
            what = f"a CUDA device for {device} (no NVIDIA driver found)"
            return [Missing(what, where, DEVICE, "use --device cpu")]
    if device.startswith("mps") and sys.platform != "darwin":
        return [Missing(f"an MPS device for {device} (macOS only)", where, DEVICE, "use --device cpu")]
    return []


def _components_present(folder: Path) -> bool:
    """Every component named in ``model_index.json`` has its subfolder (a complete download)."""
    import json

    try:
        index = json.loads((folder / "model_index.json").read_text("utf-8"))
    except (OSError, ValueError):
        return False
    names = [k for k, v in index.items() if not k.startswith("_") and isinstance(v, list) and v and v[0]]
    return all((folder / name).is_dir() for name in names)
