"""``grefine serve``: run the HTTP API and the web page (options: docs/serve.md)."""

from __future__ import annotations

import ipaddress
import sys
from pathlib import Path

import click

from grefine_kit.cli.app import user_errors
from grefine_serve.settings import DEFAULTS

__all__ = ["serve"]


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@click.command("serve", context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--out",
    "out",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="folder for every job's upload and results (nothing is written elsewhere)",
)
@click.option(
    "--host",
    default=DEFAULTS.host,
    show_default=True,
    help="address to bind; anything but loopback exposes the server: set a token",
)
@click.option(
    "--port", default=DEFAULTS.port, show_default=True, type=click.IntRange(0, 65535), help="TCP port"
)
@click.option(
    "--token",
    envvar="GREFINE_SERVE_TOKEN",
    default=None,
    show_envvar=True,
    help="require 'Authorization: Bearer TOKEN' on the API (prefer the env var: argv is visible)",
)
@click.option(
    "--recipes", default=None, help="comma-separated recipe names requests may use (default: all registered)"
)
@click.option(
    "--recipe-file",
    "recipe_files",
    multiple=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="also serve this TOML recipe, read with the CLI's rules (repeatable)",
)
@click.option(
    "--default-recipe", default=None, help="recipe of requests that name none [g-refine, else the first]"
)
@click.option("--device", default=None, help="the device every recipe runs on (one per process), e.g. cuda:0")
@click.option(
    "--workers", default=DEFAULTS.workers, show_default=True, type=int, help="jobs run at the same time"
)
@click.option(
    "--queue",
    "queue_size",
    default=DEFAULTS.queue_size,
    show_default=True,
    type=int,
    help="jobs that may wait; more get 429 with Retry-After",
)
@click.option(
    "--max-upload", default=DEFAULTS.max_upload, show_default=True, help="largest upload (bytes; kB/MB/GB)"
)
@click.option(
    "--max-pixels",
    default=DEFAULTS.max_pixels,
    show_default=True,
    type=int,
    help="largest image in pixels, checked before decoding",
)
@click.option(
    "--keep",
    default=DEFAULTS.keep,
    show_default=True,
    help="how long finished jobs' files are kept (s/m/h/d)",
)
@click.option(
    "--job-timeout",
    default=DEFAULTS.job_timeout,
    show_default=True,
    help="a running job stops after this long",
)
@click.option(
    "--abandon-after",
    default=DEFAULTS.abandon_after,
    show_default=True,
    help="a refine job no client asked about for this long is cancelled",
)
@click.option("--preload", multiple=True, help="build this recipe's models at start (repeatable)")
@click.option(
    "--log-level",
    default="info",
    show_default=True,
    type=click.Choice(["critical", "error", "warning", "info", "debug"]),
)
@user_errors
def serve(
    out: Path,
    host: str,
    port: int,
    token: str | None,
    recipes: str | None,
    recipe_files: tuple[Path, ...],
    default_recipe: str | None,
    device: str | None,
    workers: int,
    queue_size: int,
    max_upload: str,
    max_pixels: int,
    keep: str,
    job_timeout: str,
    abandon_after: str,
    preload: tuple[str, ...],
    log_level: str,
) -> None:
    """Serve the HTTP API (/v1, OpenAPI at /v1/docs) and the web page (/) until Ctrl-C.

    Models load once per recipe and stay loaded; jobs wait in a bounded queue.
    """
    import uvicorn

    from grefine_kit.errors import UserError
    from grefine_kit.runs import RunFolder
    from grefine_serve.app import create_app
    from grefine_serve.settings import ServeSettings, parse_duration, parse_size

    if token is not None and len(token) < 8:
        raise UserError("--token must be at least 8 characters")
    settings = ServeSettings(
        out=out.resolve(),
        host=host,
        port=port,
        token=token or None,
        device=device,
        workers=workers,
        queue_size=queue_size,
        max_upload_bytes=parse_size(max_upload, "--max-upload"),
        max_pixels=max_pixels,
        keep_seconds=parse_duration(keep, "--keep"),
        job_timeout=parse_duration(job_timeout, "--job-timeout"),
        abandon_after=parse_duration(abandon_after, "--abandon-after"),
        recipes=tuple(n.strip() for n in recipes.split(",") if n.strip()) if recipes is not None else None,
        recipe_files=recipe_files,
        default_recipe=default_recipe,
        preload=preload,
    )
    if not _is_loopback(host) and settings.token is None:
        click.echo(
            f"grefine: warning: serving on {host} without a token: anyone who reaches it can use it", err=True
        )
    # the server's folder is a run folder: locked (one server per folder), stale temp files removed
    with RunFolder.open(settings.out, log_name="serve.jsonl"):
        app = create_app(settings)
        click.echo(f"grefine serve: http://{host}:{port}/ (results in {settings.out})", err=True)
        sys.stderr.flush()
        uvicorn.run(app, host=host, port=port, log_level=log_level, timeout_graceful_shutdown=5)
