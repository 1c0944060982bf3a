"""Checking a torch device name before a model is moved there: one clear setup error."""

from __future__ import annotations

from grefine_kit.errors import SetupError

__all__ = ["check_device"]


def check_device(device: str) -> str:
    """Return ``device`` when torch can use it; raise SetupError (exit 2) when it names no
    device (``--device gpu``) or one this machine lacks (``cuda`` without CUDA, ``cuda:3`` on
    a one-GPU machine, ``mps`` off Apple silicon)."""
    import torch

    try:
        parsed = torch.device(device)
    except (RuntimeError, TypeError, ValueError):
        raise SetupError(
            f"--device {device!r}: not a torch device (use auto, cpu, cuda, cuda:N or mps)"
        ) from None
    if parsed.type == "cuda":
        if not torch.cuda.is_available():
            raise SetupError(f"--device {device}: CUDA is not available on this machine; use --device cpu")
        count = torch.cuda.device_count()
        if parsed.index is not None and parsed.index >= count:
            raise SetupError(
                f"--device {device}: this machine has {count} CUDA device(s) (cuda:0..cuda:{count - 1})"
            )
    elif parsed.type == "mps":
        mps = getattr(torch.backends, "mps", None)
        if mps is None or not mps.is_available():
            raise SetupError(f"--device {device}: MPS is not available on this machine; use --device cpu")
    return device
