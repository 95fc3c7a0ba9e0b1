"""The `brandbot` command."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from . import __version__
from .brand_file import BrandFileError, load_answers
from .validation import resolved_answers

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Turn one brand file into a tested, deployable Chainlit customer-service bot.")


def fail(message: str) -> typer.Exit:
    """Print one clear sentence to stderr and return the exit to raise."""
    typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
    return typer.Exit(1)


@app.command()
def middleware(
    port: Annotated[int, typer.Option(help="Port on 127.0.0.1 to listen on.")] = 8001,
    latency_ms: Annotated[float, typer.Option(help="Delay before every answer, in milliseconds.")] = 0.0,
    brand: Annotated[Path | None, typer.Option(help="Brand file whose categories to route to.")] = None,
    auth_header: Annotated[str | None, typer.Option(help="Header carrying the secret (default: the brand's).")] = None,
) -> None:
    """Run the reference AI middleware (the secret is read from BACKEND_API_SECRET)."""
    from .processes import port_is_free
    from .reference_middleware import serve

    secret = os.environ.get("BACKEND_API_SECRET", "")
    if not secret:
        raise fail("set BACKEND_API_SECRET to the secret the bot will send")
    try:
        answers = resolved_answers(load_answers(brand) if brand else {"brand_name": "Reference"})
    except BrandFileError as error:
        raise fail(str(error)) from None
    if not port_is_free(port):
        raise fail(f"port {port} on 127.0.0.1 is already in use; pick another with --port")
    header = auth_header or answers.get("auth_header", "x-secret")
    typer.echo(f"reference middleware on http://127.0.0.1:{port}/chat (secret header {header})", err=True)
    serve(answers, host="127.0.0.1", port=port, secret=secret, auth_header=header,
          latency_seconds=latency_ms / 1000)


@app.command()
def version() -> None:
    """Print brandbot's version."""
    typer.echo(__version__)


def main() -> None:
    """Entry point of the console script."""
    app()
