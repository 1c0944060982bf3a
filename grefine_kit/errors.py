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


class NotAnImageError(ImageError):
    """The data is not an image PIL can read (unknown format, unreadable header)."""


class ImageTooLargeError(ImageError):
    """The image's header declares more pixels than the ``max_pixels`` limit (nothing decoded)."""


class ImageBombError(ImageTooLargeError):
    """PIL's own decompression-bomb guard refused the image."""


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


class OutputNameError(ImageError):
    """One item's output file cannot be created under its name (too long for the file system,
    or characters it refuses): that item's error record; the run goes on."""


class NonFiniteError(GrefineError):
    """A model produced NaN or infinite values (an overflow, e.g. fp16 or an extreme option):
    that item fails with reason "non-finite output"; the run goes on."""


class PluginError(GrefineError):
    """A plugin is broken (duplicate names, a failing hook)."""


_KINDS = {
    int: "an integer",
    float: "a number",
    str: "text",
    bool: "true or false",
    list: "a list",
    tuple: "a list",
    dict: "a table",
}


def _kind(types: object) -> str:
    if isinstance(types, tuple):
        return " or ".join(dict.fromkeys(_kind(t) for t in types))
    if isinstance(types, type):
        return _KINDS.get(types, f"a {types.__name__}")
    return str(types)


def error_text(exc: BaseException) -> str:
    """The message of ``exc`` as one line. attrs' type validators raise
    ``TypeError(message, attribute, type, value)``, whose ``str`` is a tuple with the whole
    ``Attribute`` repr, and whose message says ``must be <class 'int'>``: say it in words
    (``'iterations' must be an integer (got 1000000000.0, a decimal number)``)."""
    args = exc.args
    if isinstance(exc, TypeError) and len(args) == 4 and isinstance(args[2], (type, tuple)):
        name = getattr(args[1], "name", None)
        if isinstance(name, str):
            value = args[3]
            got = "a decimal number" if isinstance(value, float) else _kind(type(value))
            return f"{name!r} must be {_kind(args[2])} (got {value!r}, {got})"
    attrs_style = len(args) > 1 and isinstance(args[0], str)
    text = args[0] if attrs_style else str(exc)
    return " ".join(text.split())


#: the reason given for a checkpoint that ``torch.load(weights_only=True)`` refused
REFUSED_PICKLE = "refused: it holds pickled Python objects, not only tensors (never executed for safety)"


_REFUSAL_MARKS = ("weights_only", "Unsupported global")


def refused_pickle(exc: BaseException) -> bool:
    """Whether ``exc``, or an error it was raised from or while handling, is torch refusing a
    pickled checkpoint under ``weights_only=True`` (whose six-line text advises
    ``weights_only=False``, i.e. running the file's code: we never do, nor quote it)."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        text = str(current)
        if type(current).__name__ == "UnpicklingError" or any(m in text for m in _REFUSAL_MARKS):
            return True
        current = current.__cause__ or current.__context__
    return False


def error_message(exc: BaseException) -> str:
    """One line for a report or a log: our own errors carry a complete message; any other
    exception gets its type name for context (``RuntimeError: CUDA out of memory``)."""
    text = error_text(exc)
    return text if isinstance(exc, UserError) else f"{type(exc).__name__}: {text}"
