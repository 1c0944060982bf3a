"""What a diffusers stage needs on this machine, answered without importing diffusers.

``stage_hub_weights`` lists the hub models a stage loads (its ``required_weights()``);
``stage_findings`` reports a missing local model and a device the machine lacks (its
``preflight()``). Both read the ``model`` string the way :func:`~grefine_kit.stages.loading.parse_model`
does.
"""

from __future__ import annotations

from grefine_kit.errors import UserError
from grefine_kit.parts.base import FILE, HubWeights, Missing
from grefine_kit.stages.loading import parse_model

__all__ = ["stage_findings", "stage_hub_weights"]


def stage_hub_weights(model: str, config: str = "", revision: str = "") -> list[HubWeights]:
    """The hub models ``model`` (and, for a single checkpoint file, its ``config``) load: a
    diffusers pipeline folder each; none for tiny, local or unreadable ``model`` values."""
    try:
        source = parse_model(model)
    except UserError:  # a local path that is not there: stage_findings reports it
        return []
    if source.kind == "hub":
        return [HubWeights(source.location, revision=revision, label=f"diffusers model {source.location}")]
    if source.kind == "file" and config and not _is_local(config):
        repo = config.removeprefix("hf-hub:")
        return [HubWeights(repo, ("model_index.json",), label=f"diffusers config {repo}")]
    return []


def stage_findings(model: str, device: str) -> list[Missing]:
    """A device this machine lacks; a local model file or folder that is not there."""
    from grefine_kit.parts.checks import check_device

    found = check_device(device)
    try:
        parse_model(model)
    except UserError:
        found.append(Missing(f"diffusers file {model.strip()}", kind=FILE, fix="fix the path"))
    return found


def _is_local(text: str) -> bool:
    try:
        return parse_model(text).kind in ("dir", "file", "tiny")
    except UserError:
        return True  # a path that is not there is not a hub id either
