"""Fixtures: a real ``grefine serve`` in a subprocess on a free loopback port, test images.

Without the plugin installed (a checkout), ``grefine_serve`` is made importable and a minimal
``.dist-info`` carries its entry point for the server subprocess; CI installs the plugin
(``pip install ./plugins/*/``) and then that does nothing.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import io
import os
import socket
import subprocess
import sys
import time
import tomllib
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

PLUGIN_DIR = Path(__file__).resolve().parents[1]
ROOT = PLUGIN_DIR.parents[1]
EXAMPLE = ROOT / "grefine_kit" / "data" / "example.png"

if importlib.util.find_spec("grefine_serve") is None:
    sys.path.insert(0, str(PLUGIN_DIR))


def _plugin_env(site: Path) -> dict[str, str]:
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    try:
        importlib.metadata.distribution("grefine-serve")
        return env
    except importlib.metadata.PackageNotFoundError:
        pass
    project = tomllib.loads((PLUGIN_DIR / "pyproject.toml").read_text())["project"]
    info = site / "grefine_serve-0.1.0.dist-info"
    info.mkdir(parents=True, exist_ok=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {project['name']}\nVersion: 0.1.0\n")
    lines = ["[grefine_kit]", *(f"{k} = {v}" for k, v in project["entry-points"]["grefine_kit"].items())]
    (info / "entry_points.txt").write_text("\n".join(lines) + "\n")
    env["PYTHONPATH"] = os.pathsep.join([str(site), str(PLUGIN_DIR), env.get("PYTHONPATH", "")])
    return env


@pytest.fixture(scope="session")
def plugin_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """The environment of a subprocess that sees grefine-serve's entry point."""
    return _plugin_env(tmp_path_factory.mktemp("site"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class ServerProcess:
    """``grefine serve --out OUT ARGS`` in a subprocess; ``url`` once it answers health."""

    def __init__(self, out: Path, args: list[str], env: dict[str, str], log: Path) -> None:
        self.out, self.args, self.env, self.log_path = out, args, env, log
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 180.0) -> ServerProcess:
        import httpx

        cmd = [
            sys.executable,
            "-m",
            "grefine_kit.cli",
            "serve",
            "--out",
            str(self.out),
            "--port",
            str(self.port),
            "--log-level",
            "warning",
            *self.args,
        ]
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(cmd, env=self.env, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the server exited with {self.proc.returncode}: {self.log()}")
            try:
                if httpx.get(self.url + "/v1/health", timeout=2).status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"the server did not answer within {timeout} s: {self.log()}")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-4000:]


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory, plugin_env: dict[str, str]) -> Iterator[ServerProcess]:
    """The shared server: the tiny recipe only, one worker, the default limits."""
    tmp = tmp_path_factory.mktemp("serve")
    proc = ServerProcess(tmp / "out", ["--recipes", "tiny", "--queue", "32"], plugin_env, tmp / "log.txt")
    proc.start()
    yield proc
    proc.stop()


def png_bytes(image: Image.Image) -> bytes:
    buf = io.BytesIO()
    image.save(buf, "PNG")
    return buf.getvalue()


@pytest.fixture(scope="session")
def house_png() -> bytes:
    """The bundled example image, small (96x72): the tiny recipe's models take it in ms."""
    return png_bytes(Image.open(EXAMPLE).convert("RGB").resize((96, 72)))


def noise_png(width: int, height: int, seed: int = 0) -> bytes:
    pixels = np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)
    return png_bytes(Image.fromarray(pixels))
