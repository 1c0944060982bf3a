"""The ``grefine`` command (click). ``app`` holds the group, the shared options and the error
handling; each ``*_commands`` module adds one family of commands to it.

The command modules are imported on first use (:func:`main`, or an attribute such as ``cli``),
so a Ctrl-C while they import is caught like any other: exit 130, no traceback (SIGTERM: the
same, exit 143).
"""

from __future__ import annotations

import sys
from typing import Any

__all__ = ["EXIT_FAILURES", "EXIT_OK", "EXIT_USER_ERROR", "cli", "main", "user_errors"]

_plugins_added = False


def _load() -> Any:
    from grefine_kit.cli import (  # noqa: F401  (registers the commands)
        app,
        benchmark_commands,
        calibrate_commands,
        defect_commands,
        doctor_commands,
        image_commands,
        iqa_commands,
        metric_commands,
        registry_commands,
        report_commands,
    )

    global _plugins_added
    if not _plugins_added:  # commands contributed by plugins (hook register_commands)
        _plugins_added = True
        from grefine_kit.cli.plugin_commands import add_plugin_commands

        add_plugin_commands(app.cli)
    return app


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point (SIGTERM is handled like Ctrl-C: ``cli.signals``)."""
    from grefine_kit.cli.signals import exit_code, handle_termination, interruption_line

    try:
        handle_termination()
        app = _load()
    except KeyboardInterrupt as exc:
        sys.stderr.write(interruption_line(exc) + "\n")
        raise SystemExit(exit_code(exc)) from None
    app.main(argv)


def __getattr__(name: str) -> Any:
    if name in __all__:
        return getattr(_load(), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
