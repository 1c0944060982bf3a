"""Hugging Face hub access shared by the CLIP and diffusers loaders.

Two concerns: on a machine with no network, huggingface_hub retries a dead connection for
about 45 s per file and logs every retry; and users must be able to force offline mode.
``hub_reachable()`` answers quickly (a DNS lookup with a timeout), so loaders can go straight
to a clear "weights missing" error, and ``quiet_hub_logs()`` hides the retry noise that our own
one-line error replaces. ``cache_then_hub()`` is the one loop every loader (CLIP backbones,
diffusers pipelines, metric weights) runs: the local cache first, then the hub when allowed.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import threading
from collections.abc import Callable, Iterator
from typing import TypeVar
from urllib.parse import urlparse

__all__ = ["cache_then_hub", "hub_reachable", "offline_requested", "quiet_hub_logs"]

T = TypeVar("T")

_OFFLINE_FLAGS = ("GREFINE_OFFLINE", "HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")


def offline_requested() -> bool:
    """True when the user asked for offline mode (GREFINE_OFFLINE, HF_HUB_OFFLINE, TRANSFORMERS_OFFLINE)."""
    return any(os.environ.get(k, "").strip().lower() in ("1", "true", "yes", "on") for k in _OFFLINE_FLAGS)


def hub_reachable(timeout: float = 3.0) -> bool:
    """Whether the hub's host name resolves within ``timeout`` seconds (False in offline mode).

    A resolving name does not guarantee a download works, but an unresolvable one guarantees it
    fails, after a long retry loop we can skip.
    """
    if offline_requested():
        return False
    host = urlparse(os.environ.get("HF_ENDPOINT", "https://huggingface.co")).hostname or "huggingface.co"
    result: list[bool] = []

    def lookup() -> None:
        try:
            socket.getaddrinfo(host, 443)
            result.append(True)
        except OSError:
            result.append(False)

    worker = threading.Thread(target=lookup, daemon=True)
    worker.start()
    worker.join(timeout)
    return bool(result and result[0])


_NOISE = ("Retrying in", "thrown while requesting", "Failed to download")


class _DropHubNoise(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return not (
            "Retrying in" in message
            or "thrown while requesting" in message
            or "Failed to download" in message
        )


@contextlib.contextmanager
def quiet_hub_logs() -> Iterator[None]:
    """Hide huggingface_hub's retry warnings and open_clip's download error while a loader tries
    the hub; the loader reports failure itself, once."""
    drop = _DropHubNoise()
    loggers = [
        logging.getLogger(),
        logging.getLogger("huggingface_hub"),
        logging.getLogger("huggingface_hub.utils._http"),
    ]
    handlers = [h for lg in loggers for h in lg.handlers]
    for target in (*loggers, *handlers):
        target.addFilter(drop)
    try:
        yield
    finally:
        for target in (*loggers, *handlers):
            target.removeFilter(drop)


def cache_then_hub(
    load: Callable[[bool], T],
    missing: Callable[[BaseException], Exception],
    *,
    errors: tuple[type[BaseException], ...] = (Exception,),
    cache_only: bool = False,
) -> T:
    """``load(cache_only=True)``: the local Hugging Face cache only (instant, works offline);
    when that raises one of ``errors``, ``load(cache_only=False)`` from the hub, unless offline
    mode is requested (:func:`offline_requested`), ``cache_only`` is set (a local source), or the
    hub does not resolve (:func:`hub_reachable`; the client would retry a dead connection for
    ~45 s). Hub log noise is hidden (:func:`quiet_hub_logs`).

    When no attempt succeeds, raises ``missing(last error)`` without the chained traceback:
    the caller's one-line message says what is missing and how to get it. An exception that is
    not one of ``errors`` propagates at once (``load`` may raise its own ``UserError``)."""
    attempts = [True] if cache_only or offline_requested() else [True, False]
    error: BaseException | None = None
    for only_cache in attempts:
        if not only_cache and not hub_reachable():
            error = error or OSError("the Hugging Face hub is not reachable")
            break
        try:
            with quiet_hub_logs():
                return load(only_cache)
        except errors as exc:  # hub clients raise many types offline (OSError, HTTP errors, ...)
            error = exc
    assert error is not None  # at least one attempt ran and failed
    raise missing(error) from None
