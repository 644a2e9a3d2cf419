"""The explorer's web app: Starlette routes over ``api.Explorer``, guarded by a token, served by
uvicorn on loopback.

Safety, in the order a request meets it: the token (query ``token=`` or header
``X-Latentctl-Token``, compared in constant time) on every path, the page included, except
``/favicon.ico``, which browsers ask for without it and get an empty 204; a cap on the
body before it is read; JSON only; fixed routes (static files come from a fixed list, never from a
path in the URL); every error a one-line JSON message with a 4xx status (a bug is a 500 with one
line, never a traceback). Renders run one at a time under a lock in a worker thread, and a newer
request from the same page for the same view supersedes one still waiting, so dragging a slider
never queues up stale frames. A slider's previews (``"preview": true``, smaller images while it
moves; see api.py) and the full image asked for on release share their view's slot.
"""

from __future__ import annotations

import hmac
import json
import logging
import secrets
import threading
from collections.abc import Callable
from importlib import resources
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from latentctl.errors import LatentctlError
from latentctl.explore.api import Explorer, RequestError

MAX_BODY = 64 * 1024  # the largest request (two full piles of seeds) is ~10 KB
TOKEN_HEADER = "x-latentctl-token"
STATIC = {"app.js": "text/javascript", "app.css": "text/css"}
# The page loads nothing from elsewhere; data: URLs carry the images.
CSP = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

log = logging.getLogger("latentctl.explore")


def new_token() -> str:
    return secrets.token_hex(24)


class Superseded(Exception):
    """A newer request for the same view arrived while this one waited for the renderer."""


class Renderer:
    """One render at a time (the model is shared), newest request per (client, view) wins."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._gen_lock = threading.Lock()
        self._latest: dict[tuple[str, str], int] = {}

    async def run(self, key: tuple[str, str] | None, fn: Callable[[], Any]) -> Any:
        from starlette.concurrency import run_in_threadpool

        gen = 0
        if key is not None:
            with self._gen_lock:
                gen = self._latest.get(key, 0) + 1
                self._latest[key] = gen
                if len(self._latest) > 10_000:  # many page loads; forget the old slots
                    self._latest = {key: gen}

        def job() -> Any:
            with self._lock:
                if key is not None and self._latest.get(key) != gen:
                    raise Superseded
                return fn()

        return await run_in_threadpool(job)


def _error(message: str, status: int) -> JSONResponse:
    # One line, whatever the exception carried.
    line = " ".join(str(message).split())[:500] or "error"
    return JSONResponse({"error": line}, status_code=status, headers={"Cache-Control": "no-store"})


class TokenAndSize:
    """ASGI middleware: the token on every request, and the body cap before any endpoint runs."""

    def __init__(self, app: Any, token: str, max_body: int = MAX_BODY):
        self.app, self.token, self.max_body = app, token.encode(), max_body

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        if scope.get("path") == "/favicon.ico" and scope.get("method") in ("GET", "HEAD"):
            # Every browser asks for it, token-less; a 403 was a console error on every page load.
            # No content and nothing read: it reveals only that something listens here.
            return await Response(status_code=204, headers={"Cache-Control": "max-age=86400"})(scope, receive, send)
        headers = {k.decode("latin-1").lower(): v for k, v in scope.get("headers", [])}
        given = headers.get(TOKEN_HEADER, b"")
        if not given:
            from urllib.parse import parse_qs

            qs = parse_qs(scope.get("query_string", b"").decode("latin-1"))
            given = (qs.get("token") or [""])[0].encode("latin-1", "replace")
        if not hmac.compare_digest(given, self.token):
            return await _error("missing or wrong token: open the URL latentctl explore printed", 403)(
                scope, receive, send
            )
        length = headers.get("content-length")
        try:
            too_big = length is not None and int(length) > self.max_body
        except ValueError:
            return await _error("bad Content-Length", 400)(scope, receive, send)
        if too_big:
            return await _error(f"request body too large (at most {self.max_body} bytes)", 413)(scope, receive, send)
        return await self.app(scope, receive, send)


async def _json_body(request: Request) -> Any:
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_BODY:  # chunked bodies have no Content-Length to check up front
            raise RequestError(f"request body too large (at most {MAX_BODY} bytes)", 413)
    try:
        return json.loads(body or b"{}")
    except (ValueError, UnicodeDecodeError):
        raise RequestError("the request body is not valid JSON") from None


def create_app(explorer: Explorer, token: str) -> Any:
    renderer = Renderer()
    static = resources.files("latentctl.explore") / "static"

    def guarded(handler: Callable) -> Callable:
        async def endpoint(request: Request) -> Response:
            try:
                return await handler(request)
            except Superseded:
                return _error("superseded by a newer request", 409)
            except RequestError as e:
                return _error(str(e), e.status)
            except LatentctlError as e:
                return _error(str(e), 400)
            except Exception as e:  # a bug: one line for the page and the terminal, no traceback
                log.error("explore: %s on %s: %s", type(e).__name__, request.url.path, e)
                return _error(f"internal error ({type(e).__name__}): {e}", 500)

        return endpoint

    def api(method: Callable[[Any], dict], *, body: bool = True, view: str | None = None) -> Callable:
        async def handler(request: Request) -> Response:
            payload = await _json_body(request) if body else {}
            client = request.headers.get("x-latentctl-client", "")[:64]
            key = (client, view) if view and client else None
            result = await renderer.run(key, lambda: method(payload))
            return JSONResponse(result, headers={"Cache-Control": "no-store"})

        return guarded(handler)

    async def index(request: Request) -> Response:
        html = (static / "index.html").read_text(encoding="utf-8")
        # The token goes into the page only as the value the page already came with.
        html = html.replace("{{TOKEN}}", token)
        return Response(
            html,
            media_type="text/html",
            headers={"Content-Security-Policy": CSP, "Cache-Control": "no-store", "Referrer-Policy": "no-referrer"},
        )

    async def static_file(request: Request) -> Response:
        name = request.path_params["name"]
        if name not in STATIC:
            raise RequestError(f"no file {name!r}", 404)
        return Response((static / name).read_bytes(), media_type=STATIC[name], headers={"Cache-Control": "no-store"})

    async def entry(request: Request) -> Response:
        name = request.path_params["name"]
        result = await renderer.run(None, lambda: explorer.entry(name))
        return JSONResponse(result, headers={"Cache-Control": "no-store"})

    async def not_found(request: Request, exc: HTTPException) -> Response:
        return _error(exc.detail if exc.status_code != 404 else f"no such page {request.url.path}", exc.status_code)

    routes = [
        Route("/", guarded(index)),
        Route("/static/{name}", guarded(static_file)),
        Route("/api/info", api(lambda _: explorer.info(), body=False)),
        Route("/api/entries", api(lambda _: explorer.entries(), body=False)),
        Route("/api/entries/{name:path}", guarded(entry)),
        Route("/api/tiles", api(explorer.tiles, view="tiles"), methods=["POST"]),
        Route("/api/check", api(explorer.check, view="check"), methods=["POST"]),
        Route("/api/pile", api(explorer.pile), methods=["POST"]),
        Route("/api/direction", api(explorer.direction), methods=["POST"]),
        Route("/api/steer", api(explorer.steer, view="steer"), methods=["POST"]),
        Route("/api/strip", api(explorer.strip, view="strip"), methods=["POST"]),
        Route("/api/save", api(explorer.save), methods=["POST"]),
    ]
    return TokenAndSize(Starlette(routes=routes, exception_handlers={HTTPException: not_found}), token)


def bind(host: str, port: int) -> Any:
    """A listening socket, so that port 0 gets a free port we know before uvicorn starts."""
    import socket

    from latentctl.errors import UsageError

    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # proto given explicitly: asyncio sets TCP_NODELAY only on sockets whose proto is TCP, and
    # without it Nagle + delayed ACKs add ~40 ms to every reply (measured on loopback: 47 ms -> 1 ms for a small reply).
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as e:
        sock.close()
        raise UsageError(
            f"cannot listen on {host}:{port} ({e.strerror or e}); pick another --port, or 0 for any free one"
        ) from None
    sock.listen(128)
    sock.set_inheritable(True)
    return sock


def make_server(app: Any) -> Any:
    """A uvicorn server for ``app`` that logs only warnings (no access log, no tracebacks)."""
    import uvicorn

    config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off", server_header=False)
    return uvicorn.Server(config)
