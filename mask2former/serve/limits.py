"""A bound on request bodies, enforced while they arrive: the declared ``Content-Length`` is
checked first, and a body sent without one (chunked) is cut off at the limit, so no request makes
the service hold more than ``max_bytes`` of it."""

from __future__ import annotations

from typing import Any


class BodyTooLargeError(Exception):
    """The request body is past the service's limit."""


class BodyLimit:
    """ASGI middleware: ``BodyTooLargeError`` (answered 413) for bodies over ``max_bytes``."""

    def __init__(self, app: Any, *, max_bytes: int) -> None:
        self.app, self.max_bytes = app, max_bytes

    def _refusal(self, size: str) -> BodyTooLargeError:
        return BodyTooLargeError(f"request body of {size} is over the limit of {self.max_bytes:,} bytes "
                                 "(--max-upload-mb)")

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            too_large = self._refusal(f"{int(declared):,} bytes")

            async def refuse() -> dict:
                raise too_large
            await self.app(scope, refuse, send)
            return
        seen = 0

        async def counted() -> dict:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    raise self._refusal(f"more than {self.max_bytes:,} bytes")
            return message

        await self.app(scope, counted, send)
