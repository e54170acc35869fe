"""ASGI middleware of the service."""
from __future__ import annotations

import json
import re
from typing import Any, Dict, List, Optional, Tuple

from .settings import MAX_BODY_BYTES


class BodyLimitMiddleware:
    """Refuse bodies over ``limit`` bytes with 413, by Content-Length or while reading."""

    def __init__(self, app: Any, limit: int = MAX_BODY_BYTES) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length = None
        for name, value in scope.get("headers", ()):
            if name == b"content-length":
                try:
                    length = int(value)
                except ValueError:
                    length = -1
                break
        if length is not None and (length > self.limit or length < 0):
            await self._reject(send, 413 if length > self.limit else 400)
            return
        if length is not None or scope.get("method") in ("GET", "HEAD", "OPTIONS"):
            await self.app(scope, receive, send)
            return
        # No Content-Length (chunked): buffer up to the limit, then replay.
        chunks: List[bytes] = []
        total = 0
        while True:
            msg = await receive()
            if msg["type"] != "http.request":
                break
            chunk = msg.get("body", b"")
            total += len(chunk)
            if total > self.limit:
                await self._reject(send, 413)
                return
            chunks.append(chunk)
            if not msg.get("more_body", False):
                break
        body = b"".join(chunks)
        sent = False

        async def replay() -> Dict[str, Any]:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    async def _reject(self, send: Any, status: int) -> None:
        body = json.dumps({"error": "payload_too_large" if status == 413 else "bad_request",
                           "message": f"request body over {self.limit} bytes" if status == 413
                           else "invalid Content-Length", "errors": []}).encode()
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", b"application/json"),
                                (b"content-length", str(len(body)).encode()),
                                (b"connection", b"close")]})
        await send({"type": "http.response.body", "body": body})


#: Deepest JSON nesting a request body may have (the service's bodies need 3 levels).
MAX_JSON_DEPTH = 64

_JSON_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"', re.DOTALL)
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")


class _DuplicateKey(ValueError):
    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


def _no_duplicates(pairs: List[Tuple[str, Any]]) -> Dict[str, Any]:
    out: Dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise _DuplicateKey(key)
        out[key] = value
    return out


def json_body_error(body: bytes) -> Optional[Tuple[str, Dict[str, Any]]]:
    """Why ``body`` is not acceptable JSON (message, error entry), or None.

    Refuses what FastAPI would accept silently or answer with a generic error:
    invalid UTF-8, nesting deeper than :data:`MAX_JSON_DEPTH`, and duplicate keys (the
    last one would win, so ``{"events": [...], "events": []}`` would drop the batch).
    """
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        return (f"request body is not valid UTF-8 (byte {exc.start})",
                {"reason": "invalid UTF-8", "index": exc.start})
    brackets = _JSON_STRING.sub(b"", body).translate(None, _NOT_BRACKETS)
    if len(brackets) > MAX_JSON_DEPTH:
        depth = 0
        for b in brackets:
            depth += 1 if b in (0x5B, 0x7B) else -1
            if depth > MAX_JSON_DEPTH:
                return (f"JSON nested deeper than {MAX_JSON_DEPTH} levels",
                        {"reason": f"nesting deeper than {MAX_JSON_DEPTH}"})
    try:
        json.loads(text, object_pairs_hook=_no_duplicates)
    except _DuplicateKey as exc:
        return (f"duplicate key {exc.key!r} in a JSON object",
                {"field": exc.key, "reason": "duplicate key"})
    except json.JSONDecodeError as exc:
        return (f"malformed JSON at character {exc.pos}", {"reason": exc.msg, "index": exc.pos})
    except RecursionError:
        return ("JSON nested too deeply", {"reason": "nesting too deep"})
    return None


def _is_json(content_type: str) -> bool:
    mime = content_type.split(";", 1)[0].strip().lower()
    return mime == "application/json" or (mime.startswith("application/")
                                          and mime.endswith("+json"))


class JsonBodyMiddleware:
    """Check request bodies before FastAPI reads them (docs/service.md, error body).

    A body with a Content-Type other than JSON is refused with 415
    ``unsupported_media_type``; a body without Content-Type is taken as JSON (the
    header is added for FastAPI); a body that is not valid UTF-8, nests deeper than
    :data:`MAX_JSON_DEPTH` or repeats a key in one object is refused with 400
    ``malformed_json`` naming what is wrong. Bodies of GET, HEAD, OPTIONS and DELETE
    pass untouched, as do empty bodies.
    """

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope.get("method") not in ("POST", "PUT", "PATCH"):
            await self.app(scope, receive, send)
            return
        chunks: List[bytes] = []
        while True:
            msg = await receive()
            if msg["type"] != "http.request":
                break
            chunks.append(msg.get("body", b""))
            if not msg.get("more_body", False):
                break
        body = b"".join(chunks)
        if body:
            headers = list(scope.get("headers", ()))
            ctype = next((v.decode("latin-1") for k, v in headers if k == b"content-type"), None)
            if ctype is not None and not _is_json(ctype):
                await _send_error(send, 415, "unsupported_media_type",
                                  f"Content-Type {ctype!r} is not JSON: send application/json "
                                  "(or no Content-Type)", [])
                return
            problem = json_body_error(body)
            if problem is not None:
                await _send_error(send, 400, "malformed_json", problem[0], [problem[1]])
                return
            if ctype is None:
                scope = {**scope, "headers": headers + [(b"content-type", b"application/json")]}
        sent = False

        async def replay() -> Dict[str, Any]:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)


async def _send_error(send: Any, status: int, error: str, message: str,
                      errors: List[Dict[str, Any]]) -> None:
    entries = [{"index": e.get("index"), "field": e.get("field"), "reason": e["reason"]}
               for e in errors]
    body = json.dumps({"error": error, "message": message, "errors": entries}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})
