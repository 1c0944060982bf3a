"""Exceptions. ``UserError`` subclasses are shown to CLI users as one line, exit code 2."""

from __future__ import annotations


class GrefineError(Exception):
    """Base class of every grefine_kit error."""


class UserError(GrefineError):
    """Bad input from the user (file, recipe, option): the CLI prints it and exits 2."""


class ItemError(UserError):
    """A problem of one item alone (its image, its own inputs): that item fails with this
    message and a run goes on with the others."""


class ImageError(ItemError):
    """An image could not be read safely (corrupt, truncated, too large, odd format)."""


class RecipeError(UserError):
    """A recipe is invalid; the message names the file and the key."""


class UnknownPartError(UserError):
    """A part name is not in the registry; the message suggests close names."""


class MissingDependencyError(UserError):
    """An optional library, model or weight file is not installed; the message says how to get it."""


class SetupError(UserError):
    """A problem every item of a run would hit (output folder unwritable, disk full, a broken
    model file, a missing device): the run stops at once, keeping what it finished (exit 2)."""


class OutputWriteError(SetupError):
    """An output file could not be written (read-only folder, full disk, permissions)."""


class RunLockedError(SetupError):
    """Another run holds the output folder's lock; the message names it."""


class NonFiniteError(GrefineError):
    """A model produced NaN or infinite values (an overflow, e.g. fp16 or an extreme option):
    that item fails with reason "non-finite output"; the run goes on."""


class PluginError(GrefineError):
    """A plugin is broken (duplicate names, a failing hook)."""


def error_text(exc: BaseException) -> str:
    """The message of ``exc`` as one line. attrs' type validators raise
    ``TypeError(message, attribute, type, value)``, whose ``str`` is a tuple with the whole
    ``Attribute`` repr; keep just the message."""
    attrs_style = len(exc.args) > 1 and isinstance(exc.args[0], str)
    text = exc.args[0] if attrs_style else str(exc)
    return " ".join(text.split())


def error_message(exc: BaseException) -> str:
    """One line for a report or a log: our own errors carry a complete message; any other
    exception gets its type name for context (``RuntimeError: CUDA out of memory``)."""
    text = error_text(exc)
    return text if isinstance(exc, UserError) else f"{type(exc).__name__}: {text}"
