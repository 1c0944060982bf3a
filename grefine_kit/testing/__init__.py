"""Test helpers for grefine_kit and for plugin authors.

- pytest fixtures (``grefine_kit.testing.pytest_plugin``, auto-loaded through the
  ``pytest11`` entry point): ``grefine_registry``, ``register_plugin``, ``tiny_backbone``.
- conformance checks, one per part kind: ``check_indicator``, ``check_parser``,
  ``check_combiner``, ``check_regions``, ``check_stage``, ``check_metric``, ``check_recipe``,
  ``check_engine``, and ``check_part(kind, name, **options)`` (which also runs
  ``check_capabilities``: the part's declared capabilities, ``grefine_kit.parts.base``);
  ``sample_images`` and, for metrics that declare ``needs``, ``sample_contexts``;
  ``check_plugin_light`` (a plugin's entry module, ``grefine list`` and ``grefine doctor``
  import no heavy library); ``run_files.check_files_whole`` (every file a killed and resumed
  run left is complete).
- tiny random-weight models of the real libraries: ``grefine_kit.testing.tiny_clip`` (open_clip)
  and ``grefine_kit.testing.tiny_diffusers`` (diffusers + transformers), no network needed.
"""

from grefine_kit.testing.capabilities_check import check_capabilities
from grefine_kit.testing.conformance import (
    check_combiner,
    check_indicator,
    check_metric,
    check_parser,
    check_part,
    check_recipe,
    check_regions,
    check_stage,
    sample_contexts,
    sample_images,
)
from grefine_kit.testing.engine_check import check_engine
from grefine_kit.testing.light import check_plugin_light

#: backbone options that select the tiny random CLIP (offline, random weights)
TINY_BACKBONE = {"model": "grefine-tiny", "weights": "random"}

__all__ = [
    "TINY_BACKBONE",
    "check_capabilities",
    "check_combiner",
    "check_engine",
    "check_indicator",
    "check_metric",
    "check_parser",
    "check_part",
    "check_plugin_light",
    "check_recipe",
    "check_regions",
    "check_stage",
    "sample_contexts",
    "sample_images",
]
