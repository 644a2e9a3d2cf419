"""`latentctl explore`: the Latent Compass in the browser (starlette and uvicorn imported only here, on run)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from latentctl.cli.common import (
    DeviceOpt,
    EmaOpt,
    ModelArg,
    NoiseOpt,
    SpaceOpt,
    WorkspaceOpt,
    handles_errors,
    note,
    result,
    warn,
)
from latentctl.errors import UsageError

INSTALL_HINT = "pip install starlette uvicorn"  # core dependencies: missing only in a broken install
LOOPBACK = ("127.0.0.1", "localhost", "::1")


def _require_web_stack() -> None:
    import importlib.util

    missing = [m for m in ("starlette", "uvicorn") if importlib.util.find_spec(m) is None]
    if missing:
        raise UsageError(f"latentctl explore needs {' and '.join(missing)}: {INSTALL_HINT}")


@handles_errors
def explore(
    model: ModelArg = None,
    port: Annotated[int, typer.Option(min=0, max=65535, help="Port to listen on; 0 picks any free one.")] = 0,
    host: Annotated[
        str,
        typer.Option(
            help="Address to listen on. Only 127.0.0.1 (this computer) is safe; anything else lets others on the network in with the token."
        ),
    ] = "127.0.0.1",
    browser: Annotated[
        bool, typer.Option("--browser/--no-browser", help="Open the page in the default browser.")
    ] = True,
    device: DeviceOpt = "auto",
    ema: EmaOpt = True,
    workspace: WorkspaceOpt = None,
    space: SpaceOpt = None,
    noise: NoiseOpt = None,
) -> None:
    """Browse samples, sort them into two piles, make a direction and steer with sliders, in the browser.

    Prints the page's URL, which carries a one-time token; Ctrl-C stops the server. Everything the page
    saves lands in the latent store, and every view shows the CLI command that reproduces it.

    Examples:

      latentctl explore

      latentctl explore runs/0001-faces-128px --port 8765 --no-browser
    """
    _require_web_stack()
    if host not in LOOPBACK:
        warn(
            f"--host {host}: the explorer is reachable from other computers; anyone with the URL's token can read "
            "and write your latent store"
        )

    from latentctl.cli.progress import step
    from latentctl.explore.api import Explorer
    from latentctl.explore.server import bind, create_app, make_server, new_token
    from latentctl.space.session import open_model

    with step("loading the model", finished="ready"):
        session = open_model(model, device, workspace, "fp32", warn=warn, ema=ema, space=space, noise=noise)
        explorer = Explorer(session, model_arg=model, workspace_arg=workspace)
        # One sample drawn here pays the first render's one-off costs (the device's and the
        # thread pools' start-up) before the URL is shown, not while the page waits for its grid.
        explorer.warm_up()
    token = new_token()
    sock = bind(host, port)
    shown_host = f"[{host}]" if ":" in host else host
    url = f"http://{shown_host}:{sock.getsockname()[1]}/?token={token}"
    server = make_server(create_app(explorer, token))
    note(
        f"exploring {session.path} ({session.info.model.image_size}px, latent {session.info.model.latent_dim}); Ctrl-C stops"
    )
    result(url)
    if browser:
        import threading
        import webbrowser

        # After a moment, so the server is listening when the browser asks.
        threading.Timer(0.5, lambda: webbrowser.open(url)).start()
    try:
        # uvicorn shuts down cleanly on Ctrl-C, then re-raises it; for a server that is the normal
        # way to stop, so it ends with exit 0 rather than the 130 of an interrupted command.
        server.run(sockets=[sock])
    except KeyboardInterrupt:
        pass
    finally:
        sock.close()
    note("explorer stopped")


__all__ = ["explore", "INSTALL_HINT", "Path"]
