"""Upload limits: a request body cap (ASGI middleware) and the image check.

The body cap refuses a request whose ``Content-Length`` is over the limit before reading it,
and stops reading a body (chunked or lying about its length) as soon as it passes the limit:
either way 413, nothing written. The image check decodes the upload with
``grefine_kit.images.loading.load_image`` (the header's size is checked against ``--max-pixels``
before any pixel is decoded; PIL's decompression-bomb guard stays on).
"""

from __future__ import annotations

import io
import json
import re
import warnings
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from grefine_kit.errors import ImageBombError, ImageError, ImageTooLargeError, NotAnImageError
from grefine_serve.errors import ApiError

__all__ = ["BodyLimit", "check_image", "safe_upload_name"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

#: room for the multipart framing and the form's text fields around the image
FORM_SLACK = 256 * 1024
#: decoded RGB bytes per uploaded byte above which an over-limit image is called a bomb
BOMB_RATIO = 100


class _TooLarge(Exception):
    pass


def _too_large(limit: int) -> ApiError:
    return ApiError(413, "upload_too_large", f"the upload is larger than the server's {limit:,} byte limit")


class BodyLimit:
    """ASGI middleware: 413 for a request body over ``limit`` bytes (module doc)."""

    def __init__(self, app: Callable[..., Awaitable[None]], limit: int) -> None:
        self.app = app
        self.limit = limit
        self.body_limit = limit + FORM_SLACK

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        length = headers.get(b"content-length")
        if length is not None and length.isdigit() and int(length) > self.body_limit:
            await self._refuse(send)
            return
        received = 0
        exceeded = refused = False

        async def limited_receive() -> Message:
            nonlocal received, exceeded
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.body_limit:
                    exceeded = True
                    raise _TooLarge
            return message

        async def guarded_send(message: Message) -> None:
            # the form parser may turn our exception into its own 400: answer 413 instead
            nonlocal refused
            if exceeded:
                if not refused:
                    refused = True
                    await self._refuse(send)
                return
            await send(message)

        try:
            await self.app(scope, limited_receive, guarded_send)
        except _TooLarge:
            if not refused:
                await self._refuse(send)

    async def _refuse(self, send: Send) -> None:
        error = _too_large(self.limit)
        body = json.dumps(error.body()).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [(b"content-type", b"application/json"), (b"connection", b"close")],
            }
        )
        await send({"type": "http.response.body", "body": body})


def safe_upload_name(name: str | None) -> str:
    """A plain file name for the upload (the item id of its run): letters, digits, ``._-``."""
    base = re.split(r"[\\/]", name or "")[-1]
    cleaned = re.sub(r"[^A-Za-z0-9._-]+", "_", base).strip("._")[:80]
    return cleaned or "upload"


def _declared_size(data: bytes) -> tuple[int, int] | None:
    from PIL import Image

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with Image.open(io.BytesIO(data)) as im:
                return im.size
    except Exception:
        return None


def check_image(data: bytes, *, max_bytes: int, max_pixels: int) -> tuple[int, int]:
    """``(width, height)`` of an upload that decodes within the limits; ``ApiError`` otherwise:
    413 too large (bytes, pixels or a decompression bomb), 415 not an image, 422 a broken one."""
    from grefine_kit.images.loading import load_image

    if len(data) > max_bytes:
        raise _too_large(max_bytes)
    if not data:
        raise ApiError(415, "not_an_image", "the upload is empty")
    try:
        image = load_image(data, max_pixels=max_pixels)
    except ImageError as exc:
        message = str(exc).replace("<bytes>", "upload")
        message = re.sub(r" \(raise it with .*\)$", "", message)
        if isinstance(exc, ImageBombError):
            raise ApiError(413, "decompression_bomb", message) from None
        if isinstance(exc, ImageTooLargeError):
            size = _declared_size(data)
            if size is not None and size[0] * size[1] * 3 > BOMB_RATIO * len(data):
                raise ApiError(
                    413,
                    "decompression_bomb",
                    f"{message}; refused before decoding: {len(data):,} bytes that would decode to "
                    f"{size[0] * size[1] * 3:,} (a decompression bomb)",
                ) from None
            raise ApiError(413, "too_many_pixels", message) from None
        if isinstance(exc, NotAnImageError):
            raise ApiError(415, "not_an_image", message) from None
        raise ApiError(422, "bad_image", message) from None
    return image.size
