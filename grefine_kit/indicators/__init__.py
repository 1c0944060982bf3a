"""Quality indicators (PQ-Map, AQ-Map, CLIP-Surgery text query)."""

from grefine_kit.indicators.base import Indicator

__all__ = ["Indicator"]
