"""What names PaQ-2-PiQ weights, and the published grid: plain values, no torch.

Kept apart from ``weights`` and ``model`` (which import torch) so that the indicator module,
which ``grefine list`` / ``grefine doctor`` / preflight import to build the part, stays light.
"""

from __future__ import annotations

import attrs

from grefine_kit.errors import UserError

__all__ = ["DEFAULT_WEIGHTS", "GRID", "HUB_PREFIX", "HubRef", "parse_hub_ref"]

#: the file pyiqa publishes for PaQ-2-PiQ, by hub reference (CC BY-NC: see the README)
DEFAULT_WEIGHTS = "hf-hub:chaofengc/IQA-PyTorch-Weights/P2P_RoIPoolModel-fit.10.bs.120-ca69882e.pth"
HUB_PREFIX = "hf-hub:"
#: blocks per side of the local map, as published (20 × 20 = 400 patches)
GRID = 20


@attrs.frozen
class HubRef:
    repo_id: str
    filename: str
    revision: str | None = None


def parse_hub_ref(value: str) -> HubRef:
    """``hf-hub:ORG/REPO/FILE[@REVISION]`` → HubRef; UserError if malformed."""
    body = value.removeprefix(HUB_PREFIX)
    body, _, revision = body.partition("@")
    parts = body.split("/")
    if len(parts) < 3 or not all(parts):
        raise UserError(f"weights {value!r}: a hub reference looks like hf-hub:ORG/REPO/FILE[@REVISION]")
    return HubRef("/".join(parts[:2]), "/".join(parts[2:]), revision or None)
