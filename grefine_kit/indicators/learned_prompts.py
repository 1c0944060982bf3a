"""Learned PQ-Map prompts: the bundled sets, and reading/writing pyiqa CLIP-IQA+ checkpoints.

A prompt set is four checkpoints, one per factor in ``FACTORS`` order (overall, technical,
rationality, naturalness). Recipes name a set by a stable name, never a path:

- ``"g-refine"`` (or ``"builtin:g-refine"``): the paper's learned prompts from the public
  reference code (Q-Future/Q-Refine, Apache-2.0), bundled as package data in
  ``grefine_kit/data/prompts/g-refine/`` with their LICENSE, NOTICE and SHA256SUMS. They fit
  the text tower of OpenAI CLIP ViT-B/16 (width 512, 77 tokens);
- ``"zero-shot"`` (or an empty list): no checkpoints, plain-text pairs;
- four paths (written by ``save_prompt_checkpoint`` / ``grefine train-pq``).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

from grefine_kit.errors import SetupError, UserError

if TYPE_CHECKING:
    import torch

    from grefine_kit.models.backbone import SurgeryCLIP

__all__ = [
    "BUILTIN_PROMPT_SETS",
    "ZERO_SHOT",
    "assemble_prompts",
    "builtin_prompt_dir",
    "load_prompt_features",
    "normalise_prompt_checkpoints",
    "prompt_parts",
    "resolve_prompt_checkpoints",
    "save_prompt_checkpoint",
    "verify_builtin_prompts",
]

ZERO_SHOT = "zero-shot"
#: bundled prompt sets: name -> file names in FACTORS order
BUILTIN_PROMPT_SETS: dict[str, tuple[str, ...]] = {
    "g-refine": ("PQ-overall.pth", "PQ-technical.pth", "PQ-rational.pth", "PQ-natural.pth"),
}
_N_FACTORS = 4


def _builtin_name(value: str) -> str | None:
    name = value[len("builtin:") :] if value.startswith("builtin:") else value
    return name if name in BUILTIN_PROMPT_SETS else None


def normalise_prompt_checkpoints(value: Any) -> str | tuple[str, ...]:
    """The canonical option value: a bundled set's name, ``"zero-shot"``, or a tuple of 4 paths.

    Accepts ``"g-refine"``/``"builtin:g-refine"``, ``"zero-shot"``, ``()``/``[]`` (= zero-shot) or a
    sequence of four paths. Raises ``ValueError`` with the choices otherwise."""
    if isinstance(value, str):
        if value == ZERO_SHOT:
            return ZERO_SHOT
        name = _builtin_name(value)
        if name is None:
            raise ValueError(
                f"prompt_checkpoints {value!r} is not a bundled prompt set; use one of "
                f"{sorted(BUILTIN_PROMPT_SETS)}, {ZERO_SHOT!r}, or a list of {_N_FACTORS} checkpoint paths"
            )
        return name
    paths = tuple(value)
    if not paths:
        return ZERO_SHOT
    if len(paths) != _N_FACTORS or not all(isinstance(p, str) and p for p in paths):
        raise ValueError(
            f"prompt_checkpoints must be a bundled set ({', '.join(sorted(BUILTIN_PROMPT_SETS))}), "
            f"{ZERO_SHOT!r}, or {_N_FACTORS} paths (overall, technical, rationality, naturalness)"
        )
    return paths


def builtin_prompt_dir(name: str) -> Path:
    """The package-data folder of a bundled prompt set."""
    if name not in BUILTIN_PROMPT_SETS:
        raise UserError(f"no bundled prompt set {name!r}; bundled: {sorted(BUILTIN_PROMPT_SETS)}")
    return Path(str(resources.files("grefine_kit") / "data" / "prompts" / name))


def resolve_prompt_checkpoints(value: str | Sequence[str]) -> tuple[Path, ...]:
    """The four checkpoint files named by a (normalised) ``prompt_checkpoints`` value; ``()`` for
    zero-shot."""
    value = normalise_prompt_checkpoints(value)
    if value == ZERO_SHOT:
        return ()
    if isinstance(value, str):
        folder = builtin_prompt_dir(value)
        return tuple(folder / f for f in BUILTIN_PROMPT_SETS[value])
    return tuple(Path(p) for p in value)


def verify_builtin_prompts(name: str) -> list[str]:
    """Check a bundled set against its SHA256SUMS; returns the checked file names.

    Raises ``UserError`` naming the file when one is missing or altered (a broken install)."""
    folder = builtin_prompt_dir(name)
    sums = folder / "SHA256SUMS"
    if not sums.is_file():
        raise UserError(f"bundled prompt set {name!r}: {sums} is missing (broken install?)")
    checked = []
    for line in sums.read_text("utf-8").splitlines():
        if not line.strip():
            continue
        digest, file_name = line.split(maxsplit=1)
        path = folder / file_name.strip().lstrip("*")
        if not path.is_file():
            raise UserError(f"bundled prompt set {name!r}: {path} is missing (broken install?)")
        if hashlib.sha256(path.read_bytes()).hexdigest() != digest:
            raise UserError(f"bundled prompt set {name!r}: {path} does not match SHA256SUMS")
        checked.append(path.name)
    return checked


# --- the pyiqa CLIP-IQA+ checkpoint format ------------------------------------------------------


def save_prompt_checkpoint(
    path: str | Path,
    backbone: SurgeryCLIP,
    texts: tuple[str, str],
    ctx: torch.Tensor | None = None,
    n_ctx: int = 16,
) -> Path:
    """Write a learned-prompt pair in pyiqa's CLIP-IQA+ format.

    ``{'params': {'prompt_learner.ctx': [2, n_ctx, W], 'prompt_learner.token_prefix': [2, 1, W],
    'prompt_learner.token_suffix': [2, L-1-n_ctx, W]}, 'meta': {...}}``: prefix is the SOS
    embedding, suffix the embeddings of the class words, EOT and padding of
    ``"X X ... X <text>"``; ``ctx`` defaults to the embeddings of the n_ctx "X" tokens (pyiqa's init).
    ``meta`` (ignored by pyiqa) records the texts, class-word counts and EOT indices.
    """
    import torch

    init_ctx, prefix, suffix, name_lens = prompt_parts(backbone, texts, n_ctx)
    if ctx is None:
        ctx = init_ctx
    if tuple(ctx.shape[-2:]) != (n_ctx, prefix.shape[-1]):
        raise ValueError(
            f"ctx must be [2, {n_ctx}, {prefix.shape[-1]}] or [{n_ctx}, {prefix.shape[-1]}]; "
            f"got {tuple(ctx.shape)}"
        )
    params = {
        "prompt_learner.ctx": ctx.detach().float().cpu().contiguous(),
        "prompt_learner.token_prefix": prefix,
        "prompt_learner.token_suffix": suffix,
    }
    meta = {"format": "pyiqa-clipiqa+", "texts": list(texts), "name_lens": name_lens, "eot_index": name_lens}
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    import io

    from grefine_kit.runs.atomic import write_bytes

    buf = io.BytesIO()
    torch.save({"params": params, "meta": meta}, buf)
    write_bytes(Path(path), buf.getvalue())  # temp + rename: never a half checkpoint
    return path


def prompt_parts(
    backbone: SurgeryCLIP, texts: tuple[str, str], n_ctx: int = 16
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, list[int]]:
    """The pieces of a learned prompt pair, as pyiqa's CLIP-IQA+ prompt learner builds them from
    ``"X X ... X <text>"``: ``(ctx [2, n_ctx, W]`` initialised to the "X" embeddings, ``prefix
    [2, 1, W]`` (SOS), ``suffix [2, L-1-n_ctx, W]`` (class words, EOT, padding), class-word counts)."""
    import torch

    tokens = backbone.tokenize([" ".join(["X"] * n_ctx) + " " + t for t in texts])
    with torch.no_grad():
        emb = backbone.embed_tokens(tokens).float().cpu()
    eot_pos = tokens.argmax(dim=-1).cpu()  # the EOT id is the largest id
    name_lens = [int(p) - 1 - n_ctx for p in eot_pos]
    return (
        emb[:, 1 : 1 + n_ctx].clone(),
        emb[:, :1].contiguous(),
        emb[:, 1 + n_ctx :].contiguous(),
        name_lens,
    )


def assemble_prompts(
    prefix: torch.Tensor, ctx: torch.Tensor, suffix: torch.Tensor, name_lens: Sequence[int]
) -> tuple[torch.Tensor, list[int]]:
    """``[SOS | ctx[:n/2] | class words | ctx[n/2:] | EOT ...]`` per text (pyiqa's "middle" class
    position) and the EOT positions. Differentiable in ``ctx`` (used by training)."""
    import torch

    n_ctx, half = ctx.shape[1], ctx.shape[1] // 2
    rows, eot_positions = [], []
    for i, n_words in enumerate(name_lens):
        parts = [prefix[i], ctx[i, :half], suffix[i, :n_words], ctx[i, half:], suffix[i, n_words:]]
        rows.append(torch.cat([p.float() for p in parts], dim=0))
        eot_positions.append(1 + n_ctx + int(n_words))
    return torch.stack(rows), eot_positions


def _prompt_embeddings(backbone: SurgeryCLIP, path: Path, name_len: int) -> tuple[torch.Tensor, list[int]]:
    """Assemble ``[SOS | ctx[:n/2] | class words | ctx[n/2:] | EOT ...]``.

    Returns ``([2, L, W] embeddings, EOT positions)``."""
    import torch

    if not path.is_file():
        raise UserError(f"prompt checkpoint not found: {path}")
    try:
        ckpt = torch.load(str(path), map_location="cpu", weights_only=True)
        params = ckpt["params"]
        ctx, prefix, suffix = (params[f"prompt_learner.{k}"] for k in ("ctx", "token_prefix", "token_suffix"))
        if ctx.ndim == 2:  # one context shared by both texts
            ctx = ctx.unsqueeze(0).expand(prefix.shape[0], -1, -1)
        if ctx.ndim != 3 or prefix.ndim != 3 or suffix.ndim != 3:
            raise ValueError("ctx, token_prefix and token_suffix must be [texts, tokens, width] tensors")
    except Exception as exc:
        from grefine_kit.models.loading import checkpoint_problem

        raise SetupError(f"{path}: not a CLIP-IQA+ prompt checkpoint: {checkpoint_problem(exc)}") from None
    n_ctx, width = ctx.shape[1], ctx.shape[2]
    length = 1 + n_ctx + suffix.shape[1]
    texts = {ctx.shape[0], prefix.shape[0], suffix.shape[0]}
    if width != backbone.text_width or length != backbone.context_length or texts != {2}:
        raise UserError(
            f"{path}: prompt of {sorted(texts)} texts, width {width}, length {length} does not fit "
            f"{backbone.name} (2 texts, width {backbone.text_width}, length {backbone.context_length}); "
            "learned prompts fit only the text tower they were trained on (the bundled 'g-refine' set: "
            'OpenAI CLIP ViT-B/16): use prompt_checkpoints = "zero-shot" with other backbones'
        )
    meta = ckpt.get("meta") if isinstance(ckpt, dict) else None
    meta_lens = meta.get("name_lens") if isinstance(meta, dict) else None
    with torch.no_grad():
        eot_row = (
            backbone.embed_tokens(torch.tensor([backbone.eot_token_id], device=backbone.device))[0]
            .float()
            .cpu()
        )
    n_words_per_text, eot_indices = [], []
    for i in range(2):
        if meta_lens is not None:
            eot_index = int(meta_lens[i])
        else:  # find the EOT embedding in the suffix; pyiqa's own prompts hard-code 3 class tokens
            hits = [
                j for j in range(suffix.shape[1]) if torch.allclose(suffix[i, j].float(), eot_row, atol=1e-6)
            ]
            eot_index = hits[0] if hits else name_len
        n_words_per_text.append(eot_index if meta_lens is not None else name_len)
        eot_indices.append(eot_index)
    emb, _ = assemble_prompts(prefix, ctx, suffix, n_words_per_text)
    return emb.to(backbone.device), [1 + n_ctx + e for e in eot_indices]


def load_prompt_features(
    backbone: SurgeryCLIP, path: str | Path, normalize: bool = True, name_len: int = 3
) -> torch.Tensor:
    """Text features ``[2, D]`` (positive, negative) of a CLIP-IQA+ prompt checkpoint on ``backbone``."""
    import torch

    emb, eot_positions = _prompt_embeddings(backbone, Path(path), name_len)
    with torch.no_grad():
        return backbone.encode_text_embeddings(emb, eot_positions, normalize=normalize)
