"""A second real server with a token, small limits and a one-job queue: 401s, 413s (bytes,
pixels, a decompression bomb, a chunked body), 429 with Retry-After, and jobs that survive a
restart of the server on the same folder."""

from __future__ import annotations

import io
import time
from collections.abc import Iterator

import httpx
import pytest
from PIL import Image

from .conftest import ServerProcess, noise_png, png_bytes

TOKEN = "test-token-0123456789"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
ARGS = [
    "--recipes",
    "tiny",
    "--queue",
    "1",
    "--workers",
    "1",
    "--max-upload",
    "2MB",
    "--max-pixels",
    "200000",
]


@pytest.fixture(scope="module")
def guarded(tmp_path_factory: pytest.TempPathFactory, plugin_env: dict[str, str]) -> Iterator[ServerProcess]:
    tmp = tmp_path_factory.mktemp("guarded")
    env = dict(plugin_env, GREFINE_SERVE_TOKEN=TOKEN)
    proc = ServerProcess(tmp / "out", ARGS, env, tmp / "log.txt").start()
    yield proc
    proc.stop()


def _error(answer: httpx.Response, status: int, code: str) -> str:
    assert answer.status_code == status, answer.text
    body = answer.json()["error"]
    assert (body["status"], body["code"]) == (status, code), body
    return str(body["message"])


def test_token(guarded: ServerProcess, house_png: bytes) -> None:
    health = httpx.get(guarded.url + "/v1/health")  # open: load balancers ask without a token
    assert health.status_code == 200 and health.json()["auth"] is True
    for headers, what in (
        ({}, "no token"),
        ({"Authorization": "Bearer nope-nope-nope"}, "a wrong token"),
        ({"Authorization": f"Basic {TOKEN}"}, "a wrong token"),
    ):
        answer = httpx.get(guarded.url + "/v1/recipes", headers=headers)
        assert _error(answer, 401, "unauthorized").startswith(what)
        assert answer.headers["www-authenticate"].startswith("Bearer")
        files = {"image": ("a.png", house_png, "image/png")}
        _error(httpx.post(guarded.url + "/v1/score", files=files, headers=headers), 401, "unauthorized")
    assert httpx.get(guarded.url + "/v1/recipes", headers=AUTH).status_code == 200
    assert 'id="token"' in httpx.get(guarded.url + "/").text  # the page asks for it


def test_size_limits(guarded: ServerProcess) -> None:
    def score(data: bytes) -> httpx.Response:
        return httpx.post(
            guarded.url + "/v1/score", files={"image": ("x.png", data, "image/png")}, headers=AUTH
        )

    big = noise_png(1000, 1000)  # about 3 MB of noise: over the 2 MB limit
    assert len(big) > 2_000_000
    assert "2,000,000 byte limit" in _error(score(big), 413, "upload_too_large")
    assert "exceeds the 0.2 MP limit" in _error(score(noise_png(500, 500)), 413, "too_many_pixels")
    bomb = png_bytes(Image.new("RGB", (8000, 8000)))  # a few kB that decode to 192 MB
    assert len(bomb) < 300_000
    assert "decompression bomb" in _error(score(bomb), 413, "decompression_bomb")

    def chunks() -> Iterator[bytes]:  # no Content-Length: the body is counted as it arrives
        yield b'--x\r\nContent-Disposition: form-data; name="image"; filename="a.png"\r\n\r\n'
        for _ in range(40):
            yield b"\0" * 100_000

    headers = {**AUTH, "Content-Type": "multipart/form-data; boundary=x"}
    answer = httpx.post(guarded.url + "/v1/score", content=chunks(), headers=headers)
    _error(answer, 413, "upload_too_large")
    assert httpx.get(guarded.url + "/v1/health").json()["recipe_builds"] == {}  # nothing reached a worker


def test_full_queue_answers_429_and_jobs_survive_a_restart(guarded: ServerProcess, house_png: bytes) -> None:
    files = {"image": ("house.png", house_png, "image/png")}
    data = {"prompt": "a red house", "recipe": "tiny"}
    with httpx.Client(base_url=guarded.url, headers=AUTH, timeout=60) as client:
        first = client.post("/v1/refine", files=files, data=data)
        assert first.status_code == 202, first.text
        deadline = time.monotonic() + 30
        while client.get("/v1/health").json()["running"] < 1 and time.monotonic() < deadline:
            time.sleep(0.05)  # the one worker took it (and builds the models: seconds)
        second = client.post("/v1/refine", files=files, data=data)
        assert second.status_code == 202, second.text  # waits in the one-place queue
        third = client.post("/v1/refine", files=files, data=data)
        _error(third, 429, "queue_full")
        assert int(third.headers["retry-after"]) >= 1
    guarded.stop()  # mid-job: the first is running, the second queued
    guarded.start()
    with httpx.Client(base_url=guarded.url, headers=AUTH, timeout=60) as client:
        for job in (first.json(), second.json()):
            deadline = time.monotonic() + 180
            while (view := client.get(f"/v1/jobs/{job['id']}").json())["status"] not in {"done", "failed"}:
                assert time.monotonic() < deadline, view
                time.sleep(0.2)
            assert view["status"] == "done", view["error"]
            refined = client.get(view["result"]["image"]).content
            assert Image.open(io.BytesIO(refined)).size == (96, 72)
