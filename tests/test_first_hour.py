"""First-hour frictions (issue 20, items 15-19): install hints, warnings, messages, columns."""

from __future__ import annotations

import pytest


def test_random_open_clip_weights_log_no_random_init_warning(caplog: pytest.LogCaptureFixture) -> None:
    """open_clip's "No pretrained weights loaded" warning is noise when random weights were
    asked for by name (issue 20, item 17: the pq-map docs example, tiny with ViT-B-32)."""
    import logging

    from grefine_kit.models.loading import _random_open_clip

    with caplog.at_level(logging.WARNING):
        _random_open_clip("ViT-B-32", "random")
    assert not [r for r in caplog.records if "No pretrained weights" in r.getMessage()]
