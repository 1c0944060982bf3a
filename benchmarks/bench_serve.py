"""Load on ``grefine serve`` vs separate CLI calls: score one small image with the tiny recipe.

Starts ``grefine serve --recipes tiny`` on a free loopback port (127.0.0.1 only), builds the
models with one warm-up request (its time is printed apart), then sends ``--requests`` score
requests (PQ-Map only, as ``grefine score`` does by default) from ``--concurrency`` client
threads and prints requests/s and p50/p95 latency. The same work as separate
``grefine score IMAGE --recipe tiny`` processes (``--cli-calls`` of them, one after another)
gives the baseline. Bounded: at most 500 requests and 20 CLI calls, and the load phase stops
after ``--seconds``. Needs grefine-serve and httpx installed.

    python benchmarks/bench_serve.py [--requests 60] [--concurrency 4] [--cli-calls 3] [--size 128]
"""

from __future__ import annotations

import argparse
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def _line(name: str, latencies: list[float], wall: float) -> str:
    n = len(latencies)
    return (
        f"{name:<28} {n:>5} {n / wall:>8.2f} {statistics.median(latencies) * 1000:>9.0f} "
        f"{_quantile(latencies, 0.95) * 1000:>9.0f}"
    )


def _server(out: Path, port: int, env: dict[str, str]) -> subprocess.Popen[bytes]:
    import httpx

    cmd = [
        sys.executable,
        "-m",
        "grefine_kit.cli",
        "serve",
        "--out",
        str(out),
        "--recipes",
        "tiny",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--queue",
        "512",
        "--log-level",
        "warning",
    ]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/v1/health", timeout=2).status_code == 200:
                return proc
        except httpx.TransportError:
            time.sleep(0.2)
    proc.kill()
    raise SystemExit("the server did not start within 300 s")


def main() -> None:
    import httpx

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=60)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--cli-calls", type=int, default=3)
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--seconds", type=float, default=120.0)
    args = parser.parse_args()
    n_requests, n_cli = min(args.requests, 500), min(args.cli_calls, 20)
    env = dict(os.environ, OMP_NUM_THREADS=os.environ.get("OMP_NUM_THREADS", "1"))
    print(f"machine: {platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}")
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        image = tmp / "img.png"
        pixels = np.random.default_rng(0).integers(0, 256, (args.size, args.size, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(image)
        data = image.read_bytes()
        port = _free_port()
        started = time.perf_counter()
        proc = _server(tmp / "served", port, env)
        up = time.perf_counter() - started
        try:
            client = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=120)
            form = {"indicators": "perceptual"}

            def one(_i: int) -> float:
                t0 = time.perf_counter()
                answer = client.post("/v1/score", files={"image": ("img.png", data, "image/png")}, data=form)
                answer.raise_for_status()
                return time.perf_counter() - t0

            warm = one(0)
            stop_at = time.monotonic() + args.seconds
            latencies: list[float] = []
            t0 = time.perf_counter()
            with ThreadPoolExecutor(args.concurrency) as pool:
                for start in range(0, n_requests, args.concurrency):
                    if time.monotonic() > stop_at:
                        break
                    count = min(args.concurrency, n_requests - start)
                    latencies += pool.map(one, range(count))
            served_wall = time.perf_counter() - t0
            builds = client.get("/v1/health").json()["recipe_builds"]
        finally:
            proc.terminate()
            proc.wait(30)
        cli: list[float] = []
        t0 = time.perf_counter()
        for i in range(n_cli):
            c0 = time.perf_counter()
            subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "grefine_kit.cli",
                    "score",
                    str(image),
                    "--recipe",
                    "tiny",
                    "--out",
                    str(tmp / f"cli{i}"),
                ],
                env=env,
                check=True,
                capture_output=True,
            )
            cli.append(time.perf_counter() - c0)
        cli_wall = time.perf_counter() - t0
    print(f"server start {up:.1f} s; first request (builds the models) {warm:.2f} s; builds: {builds}")
    print(f"{'score, tiny, ' + str(args.size) + ' px':<28} {'n':>5} {'req/s':>8} {'p50 ms':>9} {'p95 ms':>9}")
    print(_line(f"grefine serve, {args.concurrency} clients", latencies, served_wall))
    print(_line("separate grefine score calls", cli, cli_wall))


if __name__ == "__main__":
    main()
