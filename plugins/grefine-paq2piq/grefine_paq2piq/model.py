"""The PaQ-2-PiQ network (Ying et al., CVPR 2020, "From Patches to Pictures"), as published.

- body: torchvision ResNet-18's children up to and including ``layer4`` (512 channels, stride 32);
- ``torchvision.ops.RoIPool((2, 2), spatial_scale=1/32)`` over each box;
- head, per box: concatenated adaptive max + average pooling (2 × 512 = 1024) → BatchNorm1d →
  Dropout(0.25) → Linear(1024, 512) → ReLU → BatchNorm1d → Dropout(0.5) → Linear(512, 1).

Module indices match the released checkpoints (``body.0`` = conv1, ``body.4..7`` = layer1..4,
``head.2/4/6/8`` = the BatchNorm/Linear layers), so their state dicts load strictly.

Boxes (``boxes_for``): the whole image first (the picture's score), then a row-major grid of
``grid × grid`` equal blocks (the local quality map), in pixel coordinates of that image. They
are computed for every image from its own size (the original caches the first image's boxes on
the class, so a second image of another size was scored with the wrong boxes).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from grefine_paq2piq.refs import GRID

__all__ = ["GRID", "PaQ2PiQNet", "boxes_for"]


class _ConcatPool(nn.Module):
    """``[max-pool, avg-pool]`` to 1×1, concatenated on channels (max first, as released)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pool = nn.functional
        return torch.cat([pool.adaptive_max_pool2d(x, 1), pool.adaptive_avg_pool2d(x, 1)], 1)


class PaQ2PiQNet(nn.Module):
    """ResNet-18 body + RoIPool + regression head. Input: RGB in [0, 1], no mean/std.

    ``forward(pixels, boxes)``: ``pixels`` ``[1, 3, H, W]``; ``boxes`` ``[K, 4]`` (x0, y0, x1, y1
    in pixels of that image) → ``[K]`` raw scores (~0..100 for the released weights, higher =
    better).
    """

    def __init__(self) -> None:
        super().__init__()
        import torchvision
        from torchvision.ops import RoIPool

        resnet = torchvision.models.resnet18(weights=None)
        self.body = nn.Sequential(*list(resnet.children())[:-2])
        self.head = nn.Sequential(
            _ConcatPool(),
            nn.Flatten(),
            nn.BatchNorm1d(1024),
            nn.Dropout(0.25),
            nn.Linear(1024, 512),
            nn.ReLU(inplace=True),
            nn.BatchNorm1d(512),
            nn.Dropout(0.5),
            nn.Linear(512, 1),
        )
        self.roi_pool = RoIPool((2, 2), spatial_scale=1 / 32)

    def features(self, pixels: torch.Tensor) -> torch.Tensor:
        """``[1, 3, H, W]`` → the body's ``[1, 512, ceil(H/32), ceil(W/32)]`` feature map."""
        return self.body(pixels)

    def score_boxes(self, features: torch.Tensor, boxes: torch.Tensor) -> torch.Tensor:
        """Raw scores ``[K]`` of ``boxes`` ``[K, 4]`` on one image's ``features``."""
        rois = torch.cat([boxes.new_zeros((boxes.shape[0], 1)), boxes], dim=1)  # batch index 0
        pooled = self.roi_pool(features, rois)
        return self.head(pooled).view(-1)

    def forward(self, pixels: torch.Tensor, boxes: torch.Tensor) -> torch.Tensor:
        if pixels.ndim != 4 or pixels.shape[0] != 1:
            raise ValueError(f"expected pixels [1, 3, H, W]; got {tuple(pixels.shape)}")
        return self.score_boxes(self.features(pixels), boxes)


def boxes_for(height: int, width: int, grid: int = GRID, device: Any = "cpu") -> torch.Tensor:
    """``[1 + grid², 4]`` float32 boxes: the whole image, then the blocks row by row (top row
    first, left to right), their edges at ``linspace(0, size, grid + 1)``."""
    ys = torch.linspace(0, float(height), grid + 1)
    xs = torch.linspace(0, float(width), grid + 1)
    y0, x0 = torch.meshgrid(ys[:-1], xs[:-1], indexing="ij")
    y1, x1 = torch.meshgrid(ys[1:], xs[1:], indexing="ij")
    blocks = torch.stack([x0, y0, x1, y1], dim=-1).reshape(-1, 4)
    whole = torch.tensor([[0.0, 0.0, float(width), float(height)]])
    return torch.cat([whole, blocks]).to(device=device, dtype=torch.float32)
