"""grefine-paq2piq: the PaQ-2-PiQ indicator (Ying et al., CVPR 2020) as a grefine_kit plugin.

Registers indicator ``paq2piq`` and recipe ``paq2piq-refine``. Importing this package imports
no torch: the factory is a ``"module:attr"`` string, resolved when the part is built.
"""

from __future__ import annotations

from pathlib import Path

from grefine_kit import hookimpl

__version__ = "0.1.0"

#: shown by `grefine plugins`: the weights, not this code, carry the non-commercial licence
LICENCE = "weights CC BY-NC (PaQ-2-PiQ authors): non-commercial use only; plugin code MIT"


@hookimpl
def register_indicators(register):  # type: ignore[no-untyped-def]
    register(
        "paq2piq",
        "grefine_paq2piq.indicator:PaQ2PiQ",
        summary="PaQ-2-PiQ picture score + 20x20 local quality map (ResNet-18 RoIPool; needs weights)",
        licence=LICENCE,
    )


@hookimpl
def register_recipes(register):  # type: ignore[no-untyped-def]
    register(
        "paq2piq-refine",
        Path(__file__).with_name("paq2piq-refine.toml"),
        summary="G-Refine with PaQ-2-PiQ as the perceptual map (weights CC BY-NC)",
        licence=LICENCE,
    )
