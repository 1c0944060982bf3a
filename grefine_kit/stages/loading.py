"""Loading diffusers pipelines once per process, sharing components between stages.

A model is named by one string (stage option ``model``):

- ``"tiny"`` / ``"grefine-tiny"`` (SDXL-like) or ``"tiny-sd"``: tiny RANDOM-weight pipelines
  built in process (:mod:`grefine_kit.stages.tiny`), no download;
- ``"local-dir:PATH"`` or an existing folder: a diffusers folder (``model_index.json``);
- an existing ``.safetensors``/``.ckpt`` file: a single-file checkpoint (``from_single_file``;
  diffusers needs the model's config: pass ``config`` = a local diffusers folder or hub id);
- anything else: a Hugging Face hub id (``hf-hub:`` prefix allowed), resolved to the local hub
  cache (downloaded there if missing and the hub is reachable).

Caches (process-wide, guarded by a lock; a pipeline is not safe to *run* from two threads):

1. pipelines keyed by (model, device, dtype, variant, revision, cpu_offload): a model is loaded
   from disk once, and its inpaint and img2img pipelines are views of it (``from_pipe``);
2. components by content: before loading a folder, each component whose files are identical to
   an already loaded one (same hub blob SHA-256, or same bytes for files under 64 MB) is reused,
   so e.g. an img2img model that ships the inpainting model's VAE/text encoders loads only its
   own UNet. (An inpainting UNet has 9 input channels and cannot run img2img: NOTES-ENV.)

A weight file that ``torch.load(weights_only=True)`` refuses (a pickle holding more than tensors)
is one :class:`~grefine_kit.errors.SetupError` naming the file: the run stops with one line, and
torch's advice to load it with ``weights_only=False`` (running the file's code) is not repeated.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs

from grefine_kit.devices import resolve_device, resolve_dtype
from grefine_kit.errors import REFUSED_PICKLE, MissingDependencyError, SetupError, UserError, refused_pickle
from grefine_kit.hub import cache_then_hub
from grefine_kit.stages.tiny import tiny_arch, tiny_pipeline_for

if TYPE_CHECKING:
    import torch
    from diffusers.pipelines.pipeline_utils import DiffusionPipeline

__all__ = [
    "ModelSource",
    "cache_info",
    "clear_cache",
    "download_weights",
    "load_pipeline",
    "parse_model",
    "resolve_device",
    "resolve_dtype",
]

TASKS = ("inpaint", "img2img")
#: components never shared by content: the UNet is per model, schedulers keep run state
_NOT_SHARED = {"unet", "scheduler", "transformer"}
_SMALL_FILE = 64 * 2**20
_BLOB = re.compile(r"[0-9a-f]{64}")

_lock = threading.RLock()
_pipelines: dict[tuple[Any, ...], Any] = {}
_tasks: dict[tuple[Any, ...], Any] = {}
_components: dict[tuple[str, str, str], Any] = {}
_loads: list[str] = []


@attrs.frozen
class ModelSource:
    """A parsed ``model`` option: ``kind`` is ``tiny``, ``dir``, ``file`` or ``hub``."""

    kind: str
    location: str


def parse_model(model: str) -> ModelSource:
    """Classify a ``model`` string (see the module docstring)."""
    text = model.strip()
    if not text:
        raise UserError("model must not be empty")
    arch = tiny_arch(text)
    if arch is not None:
        return ModelSource("tiny", arch)
    if text.startswith("local-dir:"):
        path = Path(text[len("local-dir:") :]).expanduser()
        if not (path / "model_index.json").is_file():
            raise UserError(f"{model!r}: no model_index.json in {path} (expected a diffusers folder)")
        return ModelSource("dir", str(path.resolve()))
    if text.startswith("hf-hub:"):
        return ModelSource("hub", text[len("hf-hub:") :])
    path = Path(text).expanduser()
    if path.is_dir():
        if not (path / "model_index.json").is_file():
            raise UserError(f"{model!r}: no model_index.json in this folder (expected a diffusers folder)")
        return ModelSource("dir", str(path.resolve()))
    if path.is_file():
        return ModelSource("file", str(path.resolve()))
    if text.startswith((".", "/", "~")) or text.endswith((".safetensors", ".ckpt")) or text.count("/") > 1:
        raise UserError(f"{model!r}: no such file or folder")
    return ModelSource("hub", text)


def download_weights(model: str, *, variant: str = "", revision: str = "") -> str | None:
    """Make sure a hub model is in the local hub cache; returns its folder (None when ``model``
    is not a hub id: tiny, local folder or file). Used by ``grefine fetch-weights``."""
    source = parse_model(model)
    if source.kind != "hub":
        return None
    return _hub_folder(source.location, variant, revision)


def _hub_folder(repo_id: str, variant: str, revision: str) -> str:
    from diffusers import DiffusionPipeline

    def load(cache_only: bool) -> str:
        return str(
            DiffusionPipeline.download(
                repo_id, variant=variant or None, revision=revision or None, local_files_only=cache_only
            )
        )

    def missing(exc: BaseException) -> Exception:  # the hub client raises many types (404, gated, auth)
        return MissingDependencyError(
            f"could not get diffusers weights {repo_id!r} ({type(exc).__name__}: {exc}). "
            f"Run `grefine fetch-weights` where the Hugging Face hub is reachable, or point the "
            f"stage's model option at a local diffusers folder."
        )

    return cache_then_hub(load, missing)


def load_pipeline(
    model: str,
    task: str,
    *,
    device: str = "auto",
    dtype: str = "auto",
    cpu_offload: bool = False,
    variant: str = "",
    revision: str = "",
    config: str = "",
    arch: str = "auto",
    sequential_offload: bool = False,
) -> DiffusionPipeline:
    """The ``task`` pipeline (``"inpaint"`` or ``"img2img"``) of ``model``, loaded at most once
    per process and option set; progress bars off. ``sequential_offload`` (CUDA only, else
    ignored): accelerate's layer-by-layer CPU offload."""
    if task not in TASKS:
        raise ValueError(f"task must be one of {TASKS}; got {task!r}")
    source = parse_model(model)
    dev = resolve_device(device)
    torch_dtype = resolve_dtype(dtype, dev)
    offload: bool | str = "sequential" if sequential_offload and dev.startswith("cuda") else cpu_offload
    key = (source.kind, source.location, dev, str(torch_dtype), variant, revision, offload, config, arch)
    with _lock:
        pipe = _tasks.get((*key, task))
        if pipe is not None:
            return pipe
        if source.kind == "tiny":
            pipe = tiny_pipeline_for(source.location, task, dev, torch_dtype)
            _loads.append(f"tiny:{source.location}:{task}")
        else:
            base = _pipelines.get(key)
            if base is None:
                share = not offload  # accelerate's offload hooks must not be shared by two pipelines
                base = _load(source, task, dev, torch_dtype, variant, revision, config, arch, share)
                _place(base, dev, offload)
                _pipelines[key] = base
                _loads.append(f"{source.kind}:{source.location}")
            pipe = _as_task(base, task)
        _check_task(pipe, task, model)
        pipe.set_progress_bar_config(disable=True)
        _tasks[(*key, task)] = pipe
        return pipe


def _as_task(base: DiffusionPipeline, task: str) -> DiffusionPipeline:
    from diffusers import AutoPipelineForImage2Image, AutoPipelineForInpainting

    if type(base).__name__ == "FluxFillPipeline":  # not in diffusers' auto tables
        if task != "inpaint":
            raise UserError("FLUX Fill is an inpainting model; use a FLUX base model for the global stage")
        return base

    auto = AutoPipelineForInpainting if task == "inpaint" else AutoPipelineForImage2Image
    try:
        return auto.from_pipe(base)
    except Exception as exc:  # diffusers raises ValueError/KeyError for unmapped pipeline classes
        raise UserError(f"{type(base).__name__} has no {task} counterpart in diffusers: {exc}") from exc


def _check_task(pipe: Any, task: str, model: str) -> None:
    unet = getattr(pipe, "unet", None)
    if unet is None:  # transformer families: diffusers checks their channels itself
        return
    channels = getattr(getattr(unet, "config", None), "in_channels", 4)
    if task == "img2img" and channels != 4:
        raise UserError(
            f"model {model!r} has a {channels}-channel (inpainting) UNet, which cannot run img2img; "
            f"use a base or refiner model for the global stage"
        )


def _place(pipe: Any, device: str, cpu_offload: bool | str) -> None:
    if cpu_offload == "sequential" and device.startswith("cuda"):
        pipe.enable_sequential_cpu_offload(device=device)
    elif cpu_offload and device.startswith("cuda"):
        pipe.enable_model_cpu_offload(device=device)
    else:
        pipe.to(device)


def _load(
    source: ModelSource,
    task: str,
    device: str,
    dtype: Any,
    variant: str,
    revision: str,
    config: str,
    arch: str,
    share: bool,
) -> DiffusionPipeline:
    from diffusers import AutoPipelineForImage2Image, AutoPipelineForInpainting

    if source.kind == "file":
        return _load_single_file(source.location, task, dtype, config, arch)
    folder = source.location if source.kind == "dir" else _hub_folder(source.location, variant, revision)
    shared = _shared_components(Path(folder), device, dtype) if share else {}
    auto: Any = AutoPipelineForInpainting if task == "inpaint" else AutoPipelineForImage2Image
    if _index_class(Path(folder)) == "FluxFillPipeline":  # not in diffusers' auto tables
        from diffusers import DiffusionPipeline

        auto = DiffusionPipeline
    kwargs: dict[str, Any] = {**dtype_kwarg(dtype), **shared}
    if variant:
        kwargs["variant"] = variant
    try:
        pipe = auto.from_pretrained(folder, **kwargs)
    except Exception as exc:  # diffusers and transformers raise many types for a bad file
        if refused_pickle(exc):
            raise SetupError(
                f"could not load a diffusers pipeline from {folder}: {_pickled_files(Path(folder))}"
                f"{REFUSED_PICKLE}; convert the weights to .safetensors"
            ) from None
        if isinstance(exc, (OSError, ValueError, KeyError)):
            raise UserError(f"could not load a diffusers pipeline from {folder}: {exc}") from exc
        raise
    if share:
        _remember_components(Path(folder), pipe, device, dtype)
    return pipe


def _index_class(folder: Path) -> str:
    try:
        return str(json.loads((folder / "model_index.json").read_text("utf-8")).get("_class_name", ""))
    except (OSError, ValueError):
        return ""


def _load_single_file(
    path: str, task: str, dtype: torch.dtype | None, config: str, arch: str
) -> DiffusionPipeline:
    import diffusers

    family = arch if arch != "auto" else _single_file_arch(path)
    names = {
        ("sdxl", "inpaint"): "StableDiffusionXLInpaintPipeline",
        ("sdxl", "img2img"): "StableDiffusionXLImg2ImgPipeline",
        ("sd", "inpaint"): "StableDiffusionInpaintPipeline",
        ("sd", "img2img"): "StableDiffusionImg2ImgPipeline",
    }
    if (family, task) not in names:
        raise UserError(f"arch must be auto, sdxl or sd; got {arch!r}")
    cls = getattr(diffusers, names[family, task])
    kwargs: dict[str, Any] = dtype_kwarg(dtype)
    if config:
        kwargs["config"] = config
    try:
        return cls.from_single_file(path, **kwargs)
    except Exception as exc:  # from_single_file raises many types (missing config offline, bad keys)
        if refused_pickle(exc):
            raise SetupError(f"could not load single-file checkpoint {path}: {REFUSED_PICKLE}") from None
        raise UserError(
            f"could not load single-file checkpoint {path} as {names[family, task]}: {exc} "
            f"(offline, pass the stage option config = a local diffusers folder of the same model)"
        ) from exc


def _pickled_files(folder: Path) -> str:
    """``"unet/x.bin: "`` (up to two pickle-format weight files of ``folder``), or ``""``."""
    try:
        pickles = (".bin", ".pt", ".pth", ".ckpt")
        found = sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.suffix in pickles)
    except OSError:
        return ""
    if not found:
        return ""
    more = f" (and {len(found) - 2} more)" if len(found) > 2 else ""
    return f"{', '.join(found[:2])}{more}: "


def dtype_kwarg(dtype: Any) -> dict[str, Any]:
    """The dtype keyword of diffusers' loaders: ``dtype`` where diffusers has renamed it (it then
    warns that ``torch_dtype`` is deprecated), ``torch_dtype`` on older releases."""
    try:
        from diffusers.utils import deprecation_utils
    except ImportError:
        return {"torch_dtype": dtype}
    return {"dtype": dtype} if hasattr(deprecation_utils, "_resolve_dtype") else {"torch_dtype": dtype}


def _single_file_arch(path: str) -> str:
    """SDXL checkpoints have ``conditioner.*`` keys (their text encoders); SD 1.x/2.x do not."""
    if not path.endswith(".safetensors"):
        raise UserError(f"{path}: set the stage option arch = 'sdxl' or 'sd' for a non-safetensors file")
    from safetensors import safe_open

    with safe_open(path, framework="pt") as fh:
        keys = list(fh.keys())
    return "sdxl" if any(k.startswith("conditioner.") for k in keys) else "sd"


# --- sharing components by content ----------------------------------------------------------


def _component_names(folder: Path) -> list[str]:
    index = json.loads((folder / "model_index.json").read_text("utf-8"))
    return [
        name
        for name, value in index.items()
        if not name.startswith("_") and name not in _NOT_SHARED and isinstance(value, list) and value[0]
    ]


def _content_key(sub: Path) -> str | None:
    """A key equal for two component folders with identical files; None when not a folder."""
    if not sub.is_dir():
        return None
    digest = hashlib.sha256()
    for path in sorted(p for p in sub.rglob("*") if p.is_file()):
        real = path.resolve()
        digest.update(str(path.relative_to(sub)).encode())
        if _BLOB.fullmatch(real.name):  # a hub-cache blob is named by the SHA-256 of its bytes
            digest.update(real.name.encode())
        elif real.stat().st_size <= _SMALL_FILE:
            digest.update(hashlib.sha256(real.read_bytes()).digest())
        else:  # large and not a hub blob: shared only with the very same file
            st = real.stat()
            digest.update(f"{real}:{st.st_size}:{st.st_mtime_ns}".encode())
    return digest.hexdigest()


def _shared_components(folder: Path, device: str, dtype: Any) -> dict[str, Any]:
    shared = {}
    for name in _component_names(folder):
        key = _content_key(folder / name)
        found = _components.get((key, device, str(dtype))) if key else None
        if found is not None:
            shared[name] = found
    return shared


def _remember_components(folder: Path, pipe: Any, device: str, dtype: Any) -> None:
    for name in _component_names(folder):
        key = _content_key(folder / name)
        module = getattr(pipe, name, None)
        if key and module is not None:
            _components.setdefault((key, device, str(dtype)), module)


# --- introspection ----------------------------------------------------------------------


def cache_info() -> dict[str, Any]:
    """What was loaded: ``loads`` lists every load from disk (or tiny build) in order."""
    with _lock:
        return {"loads": list(_loads), "pipelines": len(_pipelines), "components": len(_components)}


def clear_cache() -> None:
    """Forget every cached pipeline and component (frees memory once no stage holds them)."""
    from grefine_kit.stages import tiny

    with _lock:
        _pipelines.clear()
        _tasks.clear()
        _components.clear()
        _loads.clear()
        tiny.clear()
