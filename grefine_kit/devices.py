"""One device and dtype rule for every part (indicators and stages alike).

- ``device = "auto"``: ``cuda`` when available, else ``mps`` (Apple GPUs), else ``cpu``.
- ``dtype = "auto"``: ``float16`` on a GPU (``cuda``/``mps``), ``float32`` on the CPU (half
  precision on the CPU is slow and some kernels are missing there).

torch is imported inside the functions: importing this module stays cheap.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from grefine_kit.errors import SetupError, UserError

if TYPE_CHECKING:
    import torch

__all__ = [
    "DTYPE_NAMES",
    "check_device",
    "check_runnable",
    "require_device",
    "resolve_device",
    "resolve_dtype",
    "resolve_dtype_name",
]

#: the dtype names every part accepts
DTYPE_NAMES = ("auto", "float32", "float16", "bfloat16")


#: torch device types that hold no tensor data: every model would fail on its first number
_NO_DATA = frozenset({"meta"})
_NO_DATA_TEXT = (
    "device {value!r} holds no data (torch's shape-only device): models cannot run on it; "
    "use auto, cpu, cuda or mps"
)


def resolve_device(device: str) -> str:
    """``"auto"`` -> ``cuda`` if available, else ``mps``, else ``cpu``; other values as given,
    once :func:`require_device` has checked that this machine has them."""
    if device != "auto":
        return require_device(device)
    import torch

    if torch.cuda.is_available():
        return "cuda"
    mps = getattr(torch.backends, "mps", None)  # absent on some builds
    if mps is not None and mps.is_available():
        return "mps"
    return "cpu"


def resolve_dtype_name(dtype: str, device: str) -> str:
    """The concrete dtype name for ``dtype`` on the (resolved) ``device``."""
    if dtype not in DTYPE_NAMES:
        raise UserError(f"dtype must be one of {', '.join(DTYPE_NAMES)}; got {dtype!r}")
    if dtype == "auto":
        return "float16" if device.startswith(("cuda", "mps")) else "float32"
    return dtype


def resolve_dtype(dtype: str, device: str) -> torch.dtype:
    """The ``torch.dtype`` for ``dtype`` on the (resolved) ``device``."""
    import torch

    name = resolve_dtype_name(dtype, device)
    return {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}[name]


def check_device(_inst: Any, _attribute: Any, value: str) -> None:
    """attrs validator: ``auto`` or a string torch accepts as a device."""
    if value == "auto":
        return
    import torch

    try:
        parsed = torch.device(value)
    except (RuntimeError, TypeError) as exc:
        raise ValueError(
            f"device must be 'auto' or a torch device like 'cpu', 'cuda:0'; got {value!r}"
        ) from exc
    if parsed.type in _NO_DATA:
        raise ValueError(_NO_DATA_TEXT.format(value=value))


def check_runnable(_inst: Any, attribute: Any, value: Any) -> None:
    """attrs validator (no torch import): refuse a device that holds no data (``meta``), which
    would otherwise fail every item of a run instead of the run once."""
    if isinstance(value, str) and value.split(":")[0].strip().lower() in _NO_DATA:
        raise ValueError(_NO_DATA_TEXT.format(value=value))


def require_device(device: str) -> str:
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
    if parsed.type in _NO_DATA:
        raise SetupError("--" + _NO_DATA_TEXT.format(value=device))
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
