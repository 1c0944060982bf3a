"""Finding and reading PaQ-2-PiQ checkpoints (never plain pickle).

``weights`` names one of:

- a file path (``.pth``/``.pt``: ``torch.load(weights_only=True)``; ``.safetensors``);
- a hub reference ``hf-hub:ORG/REPO/FILE[@REVISION]``: the file from the **local** Hugging Face
  cache only (``local_files_only=True``; nothing is downloaded at scoring time; ``grefine
  fetch-weights`` downloads it on purpose);
- ``random`` / ``random:SEED``: random initialisation, for tests and smoke runs (the scores are
  meaningless).

Both released layouts load: the original release file, ``{"model": state_dict}`` (also
``{"state_dict": ...}``), and the flat state dict pyiqa redistributes; a ``module.`` prefix
(DataParallel) is dropped. Keys must then match :class:`~grefine_paq2piq.model.PaQ2PiQNet`
exactly (BatchNorm's ``num_batches_tracked`` counters may be absent: inference never reads them).
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import torch

from grefine_kit.errors import MissingDependencyError, UserError
from grefine_paq2piq.model import PaQ2PiQNet
from grefine_paq2piq.refs import DEFAULT_WEIGHTS, HUB_PREFIX, HubRef, parse_hub_ref

__all__ = [
    "DEFAULT_WEIGHTS",
    "HubRef",
    "clear_model_cache",
    "get_model",
    "load_state",
    "parse_hub_ref",
    "resolve_weights",
]


def resolve_weights(weights: str) -> Path:
    """The local file ``weights`` names (a path, or a hub reference found in the local cache)."""
    if weights.startswith(HUB_PREFIX):
        ref = parse_hub_ref(weights)
        try:
            from huggingface_hub import hf_hub_download
        except ImportError as exc:
            raise MissingDependencyError(
                "hub references need huggingface_hub: pip install huggingface_hub"
            ) from exc
        try:
            return Path(
                hf_hub_download(ref.repo_id, ref.filename, revision=ref.revision, local_files_only=True)
            )
        except Exception as exc:  # LocalEntryNotFoundError and friends: not in the cache
            raise MissingDependencyError(
                f"PaQ-2-PiQ weights {weights} are not in the local Hugging Face cache; run "
                f"`grefine fetch-weights --recipe paq2piq-refine` where the hub is reachable, or give "
                f"weights = PATH to a downloaded file (weights are CC BY-NC: non-commercial use only)"
            ) from exc
    path = Path(weights).expanduser()
    if not path.is_file():
        raise UserError(f"PaQ-2-PiQ weights file not found: {path}")
    return path


def _unwrap(state: Any, source: str) -> dict[str, torch.Tensor]:
    for key in ("model", "state_dict"):  # the original release wraps the state dict in "model"
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
            break
    tensors = isinstance(state, dict) and all(isinstance(v, torch.Tensor) for v in state.values())
    if not tensors or not state:
        raise UserError(f"{source} does not hold a PaQ-2-PiQ state dict of tensors")
    return {str(k).removeprefix("module."): v for k, v in state.items()}


def load_state(path: Path) -> dict[str, torch.Tensor]:
    """Tensors of a checkpoint file in either layout (see the module docstring)."""
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            raw: Any = load_file(str(path), device="cpu")
        else:
            raw = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as exc:  # corrupt file, or pickled objects that weights_only refuses
        from grefine_kit.errors import REFUSED_PICKLE, refused_pickle

        if refused_pickle(exc):  # torch's text advises weights_only=False: never quoted
            raise UserError(f"cannot read PaQ-2-PiQ weights {path}: {REFUSED_PICKLE}") from None
        reason = " ".join(f"{type(exc).__name__}: {str(exc)[:200]}".split())
        raise UserError(f"cannot read PaQ-2-PiQ weights {path}: {reason}") from exc
    return _unwrap(raw, str(path))


def build_model(state: dict[str, torch.Tensor], source: str) -> PaQ2PiQNet:
    """A PaQ2PiQNet in eval mode holding ``state``; UserError naming any key mismatch."""
    model = PaQ2PiQNet()
    expected = model.state_dict()
    optional = {k for k in expected if k.endswith("num_batches_tracked")}
    missing = sorted(set(expected) - set(state) - optional)
    unexpected = sorted(set(state) - set(expected))
    if missing or unexpected:
        raise UserError(
            f"{source} is not a PaQ-2-PiQ (RoIPool ResNet-18) checkpoint: "
            f"missing {missing[:5]}{'...' if len(missing) > 5 else ''}, "
            f"unexpected {unexpected[:5]}{'...' if len(unexpected) > 5 else ''}"
        )
    try:
        model.load_state_dict(state, strict=False)  # only the optional counters may be absent
    except RuntimeError as exc:  # shape mismatches
        raise UserError(f"{source}: {str(exc)[:300]}") from exc
    return model.eval()


def _random_model(weights: str) -> PaQ2PiQNet:
    _, _, seed_text = weights.partition(":")
    try:
        seed = int(seed_text) if seed_text else 0
    except ValueError:
        raise UserError(f"weights {weights!r}: use random or random:SEED (an integer)") from None
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return PaQ2PiQNet().eval()


_CACHE: dict[tuple[str, str], PaQ2PiQNet] = {}
_LOCK = threading.Lock()


def get_model(weights: str, device: str) -> PaQ2PiQNet:
    """The shared eval-mode model for ``(weights, device)``, loaded on first use."""
    key = (weights, device)
    with _LOCK:
        model = _CACHE.get(key)
        if model is None:
            if weights == "random" or weights.startswith("random:"):
                model = _random_model(weights)
            else:
                path = resolve_weights(weights)
                model = build_model(load_state(path), str(path))
            model = model.to(device)
            for p in model.parameters():
                p.requires_grad_(False)
            _CACHE[key] = model
        return model


def clear_model_cache() -> None:
    with _LOCK:
        _CACHE.clear()
