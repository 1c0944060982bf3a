"""The ``grefine`` command (click). ``app`` holds the group, the shared options and the error
handling; each ``*_commands`` module adds one family of commands to it."""

from grefine_kit.cli import (  # noqa: F401  (registers)
    doctor_commands,
    image_commands,
    iqa_commands,
    registry_commands,
    report_commands,
)
from grefine_kit.cli.app import EXIT_FAILURES, EXIT_OK, EXIT_USER_ERROR, cli, main, user_errors

__all__ = ["EXIT_FAILURES", "EXIT_OK", "EXIT_USER_ERROR", "cli", "main", "user_errors"]
