"""grefine-ray: the ``ray`` engine (Ray Data actors) as a grefine_kit plugin.

Registers engine ``ray``. Importing this package imports no ray: the factory is a
``"module:attr"`` string, resolved only when the engine is built (``--engine ray``).
"""

from __future__ import annotations

from grefine_kit import hookimpl

__version__ = "0.1.0"


@hookimpl
def register_engines(register):  # type: ignore[no-untyped-def]
    register(
        "ray",
        "grefine_ray.engine:RayEngine",
        summary="items on Ray Data actors (local Ray or a cluster; --workers, --address)",
    )
