"""Learning PQ-Map's quality prompts from opinion scores (paper section 3.1 and 4.2).

The image encoder stays frozen, as in the paper: each image's CLS embedding is computed once.
What is learned is the prompt context of the four antonym pairs (overall, technical,
rationality, naturalness): per pair, ``n_ctx`` context vectors for each of the two texts, fed to
the frozen text tower with its token-embedding layer bypassed (CoOp / CLIP-IQA+). The score is
PQ-Map's own: per factor, a softmax over the pair; the cask effect combines the four; the loss is
the mean squared error against the MOS scaled to [0, 1]; the optimiser Adam.

``factors = "separate"`` trains the four pairs independently instead, as the reference code does
(one CLIP-IQA+ checkpoint per factor): each factor's own positive probability is fitted to the
MOS (the only label given), with no cask effect in the loss; the four losses are summed, which
keeps the four contexts independent (each one's gradient comes from its own term only, and Adam
steps each parameter on its own).

The result is four checkpoints in pyiqa's CLIP-IQA+ format, which ``PQMap(prompt_checkpoints=...)``
loads (``grefine train-pq`` prints the recipe lines).
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs

from grefine_kit.errors import UserError
from grefine_kit.evaluation.correlation import plcc, srcc
from grefine_kit.evaluation.mos import MosRow
from grefine_kit.images.loading import load_image
from grefine_kit.indicators.pq_map import (
    FACTORS,
    PQMap,
    assemble_prompts,
    cask_effect,
    pair_probabilities,
    prompt_parts,
    save_prompt_checkpoint,
)
from grefine_kit.progress import RunProgress
from grefine_kit.runs.atomic import write_json
from grefine_kit.runs.inputs import make_output_dir

if TYPE_CHECKING:
    import torch

__all__ = ["TRAIN_FACTORS", "TrainingReport", "train_pq_prompts"]

#: "joint": the four prompts fitted together through the cask effect (default); "separate": one
#: independent fit per factor, as the reference trains one checkpoint per factor
TRAIN_FACTORS = ("joint", "separate")


@attrs.frozen
class TrainingReport:
    """What a training run did. Correlations are on the images scored by the trained prompts."""

    checkpoints: tuple[Path, ...]
    losses: tuple[float, ...]
    train_srcc: float
    train_plcc: float
    val_srcc: float | None
    val_plcc: float | None
    n_train: int
    n_val: int
    n_failed: int
    #: ``(image path, trained score)`` for every image that loaded
    predictions: tuple[tuple[str, float], ...] = ()

    def to_json(self) -> dict[str, Any]:
        data = attrs.asdict(self)
        data["checkpoints"] = [str(p) for p in self.checkpoints]
        data["predictions"] = [list(p) for p in self.predictions]
        return {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in data.items()}


def _cls_features(pq: PQMap, rows: Sequence[MosRow], progress: bool | str) -> tuple[Any, list[int], int]:
    """Frozen CLS embeddings ``[N, 1, D]`` of the images that load, their row indices, failures
    (progress: one ``encode`` item per image)."""
    import torch

    backbone = pq.backbone()
    feats, kept, failed = [], [], 0
    report = RunProgress("encode", len(rows), mode=progress)
    report.planned(0)
    try:
        for start in range(0, len(rows), pq.batch_size):
            chunk, records = [], []
            for i in range(start, min(start + pq.batch_size, len(rows))):
                record = {"id": Path(rows[i].image).stem, "file": str(rows[i].image), "status": "ok"}
                try:
                    chunk.append((i, load_image(rows[i].image)))
                except UserError as exc:
                    failed += 1
                    record.update(status="error", error=str(exc))
                records.append(record)
            if chunk:
                tokens = backbone.encode_image_tokens([im for _, im in chunk], surgery_depth=pq.surgery_depth)
                feats.append(tokens[:, :1].detach().float())
                kept += [i for i, _ in chunk]
            for record in records:
                report.item(record)
    finally:
        report.close()
    if len(kept) < 3:
        raise UserError(f"training needs at least 3 readable rated images; got {len(kept)}")
    return torch.cat(feats), kept, failed


def check_mos_range(values: Sequence[float]) -> tuple[float, float]:
    """``(min, max)`` of the MOS; UserError when they cannot be scaled to [0, 1] (all equal:
    nothing to learn; a spread beyond float range, e.g. 1.7e308, overflows)."""
    if not values:
        raise UserError("no rated images to train on")
    low, high = min(values), max(values)
    spread = high - low
    if not math.isfinite(spread) or max(abs(low), abs(high)) > 1e30:
        raise UserError(
            f"MOS values from {low:g} to {high:g} are too large to scale to [0, 1]; "
            "use a MOS scale such as 0-100"
        )
    if spread <= 0:
        raise UserError(f"every MOS is {low:g}: all images rated the same, there is nothing to learn from")
    return low, high


def train_pq_prompts(
    rows: Sequence[MosRow],
    pq: PQMap,
    out_dir: str | Path,
    *,
    epochs: int = 50,
    lr: float = 2e-3,
    batch_size: int = 64,
    n_ctx: int = 16,
    val_fraction: float = 0.0,
    seed: int = 0,
    progress: bool | str = True,
    factors: str = "joint",
) -> TrainingReport:
    """Learn the prompt context of ``pq``'s four pairs from ``rows`` and write the checkpoints.

    ``pq`` gives the backbone, the class words (``prompt_pairs``) and ``alpha``; its text table
    is not used. ``val_fraction`` of the images (chosen with ``seed``) are held out and only
    scored. ``factors``: ``"joint"`` (the cask product fitted to the MOS) or ``"separate"`` (each
    factor fitted to the MOS on its own; see the module docstring). Writes ``<factor>.pth`` (x4)
    and ``training.json`` into ``out_dir``.
    """
    import torch

    if epochs < 1 or batch_size < 1 or n_ctx < 2 or not 0.0 <= val_fraction < 1.0 or not lr > 0:
        raise UserError("need epochs >= 1, batch_size >= 1, n_ctx >= 2, 0 <= val_fraction < 1 and lr > 0")
    if factors not in TRAIN_FACTORS:
        raise UserError(f"factors must be one of {', '.join(TRAIN_FACTORS)}; got {factors!r}")
    check_mos_range([row.mos for row in rows])
    out = make_output_dir(out_dir)
    torch.manual_seed(seed)
    backbone = pq.backbone()
    features, kept, failed = _cls_features(pq, rows, progress)
    kept_mos = [rows[i].mos for i in kept]
    low, high = check_mos_range(kept_mos)
    mos = torch.tensor(kept_mos, dtype=torch.float64)  # float64: the scaling below must not overflow
    target = ((mos - low) / (high - low)).float()  # MOS scaled to [0, 1]

    order = list(range(len(kept)))
    random.Random(seed).shuffle(order)
    n_val = round(val_fraction * len(order))
    val_idx, train_idx = order[:n_val], order[n_val:]
    if len(train_idx) < 3:
        raise UserError(f"only {len(train_idx)} training images after holding out {n_val}")

    parts = [prompt_parts(backbone, pair, n_ctx) for pair in pq.prompt_pairs]
    ctx = torch.nn.Parameter(torch.stack([p[0] for p in parts]).to(backbone.device))  # [4, 2, n_ctx, W]
    fixed = [
        (prefix.to(backbone.device), suffix.to(backbone.device), lens) for _, prefix, suffix, lens in parts
    ]
    optimiser = torch.optim.Adam([ctx], lr=lr)
    scale = backbone.logit_scale
    for p in backbone.model.parameters():
        p.requires_grad_(False)  # frozen: only the context learns

    def text_table() -> torch.Tensor:
        rows_, eots = [], []
        for f, (prefix, suffix, lens) in enumerate(fixed):
            emb, eot = assemble_prompts(prefix, ctx[f], suffix, lens)
            rows_.append(emb)
            eots += eot
        feats = backbone.encode_text_embeddings(torch.cat(rows_), eots, normalize=True)
        return feats.reshape(len(FACTORS), 2, -1)

    def factor_probs(index: Sequence[int]) -> torch.Tensor:
        return pair_probabilities(features[list(index)], text_table(), scale)[:, 0]  # [b, 4]

    def predict(index: Sequence[int]) -> torch.Tensor:
        return cask_effect(factor_probs(index), pq.alpha, pq.reference_alpha_bug)

    def batch_loss(index: Sequence[int]) -> torch.Tensor:
        truth = target[list(index)].to(features.device)
        if factors == "joint":
            return torch.nn.functional.mse_loss(predict(index), truth)
        probs = factor_probs(index)
        return sum(
            (torch.nn.functional.mse_loss(probs[:, f], truth) for f in range(len(FACTORS))),
            start=torch.zeros((), device=features.device),
        )

    losses: list[float] = []
    epochs_done = RunProgress("train", epochs, mode=progress)
    epochs_done.planned(0, loading=False)
    try:
        for epoch in range(1, epochs + 1):
            random.Random(seed + len(losses)).shuffle(train_idx)
            total = 0.0
            for start in range(0, len(train_idx), batch_size):
                batch = train_idx[start : start + batch_size]
                loss = batch_loss(batch)
                optimiser.zero_grad()
                loss.backward()
                optimiser.step()
                total += float(loss.detach()) * len(batch)
            losses.append(total / len(train_idx))
            epochs_done.item({"id": f"epoch {epoch}", "status": "ok", "loss": losses[-1]})
    finally:
        epochs_done.close()

    if not all(math.isfinite(x) for x in losses):
        raise UserError(f"training diverged (loss {losses[-1]}): lower --lr; no checkpoint written")
    with torch.no_grad():
        scores = predict(range(len(kept))).cpu().tolist()
    checkpoints = tuple(
        save_prompt_checkpoint(
            out.resolve() / f"{factor}.pth", backbone, pair, ctx=ctx[f].detach().cpu(), n_ctx=n_ctx
        )
        for f, (factor, pair) in enumerate(zip(FACTORS, pq.prompt_pairs, strict=True))
    )

    def corr(index: Sequence[int]) -> tuple[float | None, float | None]:
        if len(index) < 3:
            return None, None
        pred, truth = [scores[i] for i in index], [float(mos[i]) for i in index]
        return srcc(pred, truth), plcc(pred, truth)

    train_srcc, train_plcc = corr(train_idx)
    val_srcc, val_plcc = corr(val_idx)
    report = TrainingReport(
        checkpoints=checkpoints,
        losses=tuple(losses),
        train_srcc=float("nan") if train_srcc is None else train_srcc,
        train_plcc=float("nan") if train_plcc is None else train_plcc,
        val_srcc=val_srcc,
        val_plcc=val_plcc,
        n_train=len(train_idx),
        n_val=len(val_idx),
        n_failed=failed,
        predictions=tuple((str(rows[i].image), float(scores[j])) for j, i in enumerate(kept)),
    )
    settings = {
        "epochs": epochs,
        "lr": lr,
        "batch_size": batch_size,
        "n_ctx": n_ctx,
        "seed": seed,
        "val_fraction": val_fraction,
        "model": pq.model,
        "weights": pq.weights,
        "prompt_pairs": [list(p) for p in pq.prompt_pairs],
        "alpha": list(pq.alpha),
        "factors": factors,
    }
    write_json(out / "training.json", {**report.to_json(), "settings": settings})
    return report
