"""Per-stage LoRAs and VAE (docs/refiner.md, "Stage controls").

LoRA (stage option ``lora``): one entry or a list; each entry is ``"PATH"`` (scale 1.0), a table
``{path = "PATH", scale = 0.8}`` or a pair ``["PATH", 0.8]``. Only ``.safetensors`` files are
accepted: ``.ckpt``/``.bin``/``.pt``/``.pth``/``.pkl`` are Python pickles, which can run code
when loaded. LoRAs load through diffusers' ``load_lora_weights`` (the kohya / A1111, diffusers
and PEFT key layouts it understands), which needs the ``peft`` package. Each file becomes one
named adapter of the pipeline, loaded once per process; before every call the stage activates
exactly its own adapters with their scales (``set_adapters``), or switches adapters off when it
has none, so two stages that share a model (or its text encoders) do not see each other's LoRAs.

VAE (stage option ``vae``): a diffusers ``AutoencoderKL`` folder (``config.json`` +
weights; ``local-dir:`` prefix optional), a single ``.safetensors`` VAE file, or a hub id. The
stage's pipeline then uses it in place of the model's own VAE (the model's other modules are
shared, not copied).

Files a stage reads beyond its model (LoRAs, a local VAE) enter the run's fingerprint through
:func:`stage_file_digests`: a resumed run redoes items when such a file's bytes change.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import attrs

from grefine_kit.errors import MissingDependencyError, UserError

if TYPE_CHECKING:
    import torch
    from diffusers.models.autoencoders.autoencoder_kl import AutoencoderKL
    from diffusers.models.modeling_utils import ModelMixin

__all__ = [
    "PICKLE_SUFFIXES",
    "LoraSpec",
    "activate_loras",
    "file_digest",
    "load_component",
    "load_vae",
    "parse_loras",
    "stage_file_digests",
]

#: pickle-based weight files (loading one can execute arbitrary code): refused
PICKLE_SUFFIXES = (".ckpt", ".bin", ".pt", ".pth", ".pkl", ".pickle")


@attrs.frozen
class LoraSpec:
    """One LoRA file and its scale (0 = loaded but without effect)."""

    path: str
    scale: float = 1.0


def _check_lora_path(path: str) -> str:
    text = path.strip()
    if not text:
        raise ValueError("a lora entry needs a file path")
    lower = text.lower()
    if lower.endswith(PICKLE_SUFFIXES):
        raise ValueError(
            f"LoRA {text!r} is a pickle-based file ({Path(lower).suffix}), which can run code when "
            f"loaded; only .safetensors LoRAs are accepted (most LoRA sites offer one; else convert "
            f"it where you trust the file)"
        )
    if not lower.endswith(".safetensors"):
        raise ValueError(f"LoRA {text!r}: only .safetensors files are accepted")
    return text


def _scale(value: Any, what: str) -> float:
    import math

    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"{what}: the scale must be a finite number, not {value!r}")
    return float(value)


def parse_loras(value: Any) -> tuple[LoraSpec, ...]:
    """The ``lora`` option normalised to :class:`LoraSpec` entries (attrs converter; raises
    ``ValueError`` with a one-line message for a bad entry)."""
    if value is None or value == "" or value == []:
        return ()
    if isinstance(value, (str, Mapping, LoraSpec)):
        value = [value]
    if not isinstance(value, Sequence) or isinstance(value, (str, bytes)):
        raise ValueError(f"lora must be a path, a {{path, scale}} table or a list of them; got {value!r}")
    out = []
    for entry in value:
        if isinstance(entry, LoraSpec):
            out.append(LoraSpec(_check_lora_path(entry.path), _scale(entry.scale, entry.path)))
        elif isinstance(entry, str):
            out.append(LoraSpec(_check_lora_path(entry)))
        elif isinstance(entry, Mapping):
            unknown = set(entry) - {"path", "scale"}
            if unknown or "path" not in entry:
                raise ValueError(f"a lora table has keys path (required) and scale; got {sorted(entry)}")
            path = _check_lora_path(str(entry["path"]))
            out.append(LoraSpec(path, _scale(entry.get("scale", 1.0), path)))
        elif isinstance(entry, Sequence) and len(entry) == 2 and isinstance(entry[0], str):
            path = _check_lora_path(entry[0])
            out.append(LoraSpec(path, _scale(entry[1], path)))
        else:
            raise ValueError(f"bad lora entry {entry!r}: give a path, {{path, scale}} or [path, scale]")
    return tuple(out)


# --- applying LoRAs ------------------------------------------------------------------------

_lock = threading.Lock()
_MODULES = ("unet", "transformer", "text_encoder", "text_encoder_2", "text_encoder_3")


def _adapter_name(path: Path) -> str:
    st = path.stat()
    key = f"{path.resolve()}:{st.st_size}:{st.st_mtime_ns}"
    return "grefine_" + hashlib.sha256(key.encode()).hexdigest()[:12]


def _loaded_adapters(pipe: Any) -> set[str]:
    names: set[str] = set()
    for attr in _MODULES:
        config = getattr(getattr(pipe, attr, None), "peft_config", None)
        if isinstance(config, Mapping):
            names.update(config)
    return names


def _check_safetensors(path: Path) -> None:
    """A file named .safetensors that is not one (e.g. a renamed pickle) -> UserError."""
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), framework="pt") as fh:
            fh.keys()
    except (SafetensorError, OSError, ValueError) as exc:
        raise UserError(f"LoRA {str(path)!r} is not a readable safetensors file ({exc})") from None


def _quiet_load(pipe: Any, path: str, name: str) -> None:
    """``load_lora_weights`` without its notes for the normal cases (a LoRA for the UNet alone;
    a second adapter on one model), which say nothing our users can act on."""
    import logging
    import warnings

    class _Drop(logging.Filter):
        def filter(self, record: logging.LogRecord) -> bool:
            return "No LoRA keys associated" not in record.getMessage()

    loggers = [
        logging.getLogger(n) for n in ("diffusers.loaders.lora_base", "diffusers.loaders.lora_pipeline")
    ]
    drop = _Drop()
    for logger in loggers:
        logger.addFilter(drop)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*Already found a `peft_config`")
            pipe.load_lora_weights(path, adapter_name=name)
    finally:
        for logger in loggers:
            logger.removeFilter(drop)


def activate_loras(pipe: Any, loras: Sequence[LoraSpec]) -> None:
    """Load (once) and activate exactly ``loras`` on ``pipe``; with none, switch adapters off.

    Raises ``UserError`` for a missing/unreadable file or one that fits no module of the
    model, ``MissingDependencyError`` without ``peft``."""
    with _lock:
        loaded = _loaded_adapters(pipe)
        if not loras:
            if loaded:
                pipe.disable_lora()
            return
        if not hasattr(pipe, "load_lora_weights"):
            raise UserError(f"{type(pipe).__name__} cannot load LoRAs (diffusers has no LoRA loader for it)")
        try:
            import peft  # noqa: F401
        except ImportError:
            raise MissingDependencyError(
                "LoRAs need the peft package: pip install 'grefine-kit[lora]' (or pip install peft)"
            ) from None
        names = []
        for spec in loras:
            path = Path(spec.path).expanduser()
            if not path.is_file():
                raise UserError(f"LoRA {spec.path!r}: no such file")
            name = _adapter_name(path)
            if name not in loaded:
                _check_safetensors(path)
                try:
                    _quiet_load(pipe, str(path), name)
                except (ValueError, KeyError, RuntimeError) as exc:
                    why = " ".join(str(exc).split())[:300]
                    raise UserError(f"LoRA {spec.path!r} does not fit {type(pipe).__name__}: {why}") from None
                loaded = _loaded_adapters(pipe)
                if name not in loaded:
                    raise UserError(f"LoRA {spec.path!r} matched no layer of the model (wrong model family?)")
            names.append(name)
        pipe.enable_lora()
        pipe.set_adapters(names, [spec.scale for spec in loras])


# --- VAE ------------------------------------------------------------------------------------

_ModelT = TypeVar("_ModelT", bound="ModelMixin")

#: loaded model components by (class, spec, device, dtype)
_components: dict[tuple[str, str, str, str], Any] = {}


def load_component(
    cls: type[_ModelT], what: str, spec: str, device: str, dtype: torch.dtype | None
) -> _ModelT:
    """A diffusers model of class ``cls`` (``AutoencoderKL``, ``ControlNetModel``) from a folder
    (``local-dir:`` prefix optional), a single ``.safetensors`` file or a hub id, on ``device``
    in ``dtype``; loaded at most once per process and (class, spec, device, dtype). Pickle files
    and paths that are not there are refused, and a load that fails is one ``UserError`` line
    naming ``what`` (``"VAE"``, ``"ControlNet"``)."""
    text = spec.strip().removeprefix("local-dir:")
    key = (cls.__name__, text, str(device), str(dtype))
    with _lock:
        if key in _components:
            return _components[key]
        from grefine_kit.stages.loading import dtype_kwarg

        loader: Any = cls  # from_single_file comes from a mixin mypy does not see on every class
        path = Path(text).expanduser()
        kwargs = dtype_kwarg(dtype)
        try:
            if path.is_dir():
                model = loader.from_pretrained(str(path), **kwargs)
            elif path.is_file():
                if path.suffix.lower() != ".safetensors":
                    raise UserError(
                        f"{what} {spec!r}: only .safetensors single files are accepted (pickles can run code)"
                    )
                model = loader.from_single_file(str(path), **kwargs)
            elif text.startswith((".", "/", "~")) or text.endswith(".safetensors"):
                raise UserError(f"{what} {spec!r}: no such file or folder")
            else:
                from grefine_kit.hub import quiet_hub_logs

                with quiet_hub_logs():
                    model = loader.from_pretrained(text.removeprefix("hf-hub:"), **kwargs)
        except UserError:
            raise
        except Exception as exc:  # diffusers raises many types for a bad folder / file / id
            why = " ".join(str(exc).split())[:300]
            raise UserError(f"could not load {what} {spec!r}: {why}") from None
        model = model.to(device)
        _components[key] = model
        return model


def load_vae(spec: str, device: str, dtype: torch.dtype | None) -> AutoencoderKL:
    """An ``AutoencoderKL`` from a folder, a single ``.safetensors`` file or a hub id (cached
    per process; :func:`load_component`)."""
    from diffusers import AutoencoderKL

    cls: Any = AutoencoderKL  # mypy sees diffusers' top-level names as placeholders
    return load_component(cls, "VAE", spec, device, dtype)


# --- fingerprint ------------------------------------------------------------------------------

_digests: dict[tuple[str, int, int], str] = {}


def file_digest(path: str | Path) -> str:
    """SHA-256 of a file (remembered per size and mtime); ``"missing"`` when it does not exist."""
    p = Path(path).expanduser()
    try:
        st = p.stat()
    except OSError:
        return "missing"
    if p.is_dir():
        parts = sorted(q for q in p.rglob("*") if q.is_file())
        h = hashlib.sha256()
        for q in parts:
            h.update(str(q.relative_to(p)).encode() + b"\0" + file_digest(q).encode())
        return h.hexdigest()
    key = (str(p.resolve()), st.st_size, st.st_mtime_ns)
    if key not in _digests:
        h = hashlib.sha256()
        with open(p, "rb") as fh:
            while chunk := fh.read(1 << 20):
                h.update(chunk)
        _digests[key] = h.hexdigest()
    return _digests[key]


def stage_file_digests(stages: Iterable[Any]) -> dict[str, str]:
    """``{path: sha256}`` of the local files the stages read beyond their model (LoRAs, a local
    VAE, a local ControlNet); {} when none does (so such runs keep their earlier fingerprints)."""
    out: dict[str, str] = {}
    from grefine_kit.parts.base import as_part

    for stage in stages:
        for path in as_part(stage).extra_files():
            out[str(path)] = file_digest(path)
    return out
