"""grefine-serve: ``grefine serve``, an HTTP API and a web page for grefine_kit.

Registers the ``serve`` command through the core's ``register_commands`` hook. Importing this
package imports neither FastAPI nor torch: the command is a ``"module:attr"`` string, loaded
only when ``grefine serve`` runs.
"""

from __future__ import annotations

from grefine_kit import hookimpl

__version__ = "0.1.0"


@hookimpl
def register_commands(register):  # type: ignore[no-untyped-def]
    register(
        "serve",
        "grefine_serve.command:serve",
        summary="HTTP API and web page: score and refine uploads, models loaded once",
    )
