"""The real server (a subprocess on a loopback port) through a real HTTP client: every
endpoint with the ``tiny`` recipe, 20 concurrent scores on models built once, a refine job's
progress, cancelling, and each bad request's JSON error."""

from __future__ import annotations

import io
import json
import socket
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import numpy as np
import pytest
from PIL import Image

PROMPT = "a red house with a blue door under a yellow sun"
ROLES = ["perceptual", "alignment", "combiner", "stage1", "stage2"]


def _files(data: bytes, name: str = "house.png") -> dict[str, tuple[str, bytes, str]]:
    return {"image": (name, data, "image/png")}


def _wait(client: httpx.Client, job_id: str, until: set[str], timeout: float = 120) -> list[dict[str, Any]]:
    """Poll a job until its status is in ``until``; every view seen, in order."""
    seen = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        view = client.get(f"/v1/jobs/{job_id}").json()
        seen.append(view)
        if view["status"] in until:
            return seen
        time.sleep(0.1)
    raise AssertionError(f"job {job_id} still {seen[-1]['status']} after {timeout} s")


@pytest.fixture(scope="module")
def client(server) -> httpx.Client:  # type: ignore[no-untyped-def]
    with httpx.Client(base_url=server.url, timeout=120) as c:
        yield c


def test_service_endpoints(client: httpx.Client) -> None:
    health = client.get("/v1/health").json()
    assert health["status"] == "ok" and health["recipes"] == ["tiny"] and health["default_recipe"] == "tiny"
    assert health["auth"] is False and health["workers"] == 1 and health["queue_size"] == 32
    recipes = client.get("/v1/recipes").json()
    assert [r["name"] for r in recipes] == ["tiny"] and recipes[0]["default"]
    assert (
        recipes[0]["indicators"] == ["perceptual", "alignment"] and recipes[0]["parts"]["stage1"] == "inpaint"
    )
    parts = client.get("/v1/parts").json()
    assert "pq-map" in {p["name"] for p in parts["indicator"]} and "recipe" not in parts
    metrics = {m["name"]: m for m in client.get("/v1/metrics").json()}
    assert metrics and all(
        set(m) >= {"lower_better", "score_range", "needs_prompt"} for m in metrics.values()
    )
    schema = client.get("/v1/openapi.json").json()
    assert schema["info"]["title"] == "grefine serve"
    assert {
        "/v1/score",
        "/v1/refine",
        "/v1/jobs/{job_id}",
        "/v1/jobs/{job_id}/cancel",
        "/v1/health",
        "/v1/recipes",
        "/v1/parts",
        "/v1/metrics",
        "/v1/jobs/{job_id}/record",
        "/v1/jobs/{job_id}/files/{name}",
        "/v1/jobs/{job_id}/report",
    } <= set(schema["paths"])
    assert "ScoreResponse" in schema["components"]["schemas"]
    page = client.get("/")
    assert (
        page.status_code == 200
        and 'id="image"' in page.text
        and '<option value="tiny" selected>' in page.text
    )
    assert "http://" not in page.text and "https://" not in page.text  # offline: nothing fetched


def test_twenty_concurrent_scores_share_one_model_build(client: httpx.Client, house_png: bytes) -> None:
    def one(i: int) -> httpx.Response:
        data = {"prompt": PROMPT, "recipe": "tiny"} if i % 2 else {}  # half with the default recipe
        return client.post("/v1/score", files=_files(house_png), data=data)

    with ThreadPoolExecutor(20) as pool:
        answers = list(pool.map(one, range(20)))
    assert [a.status_code for a in answers] == [200] * 20, [a.text for a in answers if a.status_code != 200]
    bodies = [a.json() for a in answers]
    assert len({b["id"] for b in bodies}) == 20
    # with a prompt both indicators, without one only those that need none
    assert all(
        set(b["indicators"]) == ({"perceptual", "alignment"} if i % 2 else {"perceptual"})
        for i, b in enumerate(bodies)
    )
    assert (
        len({b["indicators"]["perceptual"]["score"] for b in bodies}) == 1
    )  # the same image, the same score
    assert client.get("/v1/health").json()["recipe_builds"] == {"tiny": 1}
    first = bodies[1]["indicators"]
    raw = client.get(first["alignment"]["map"])
    qmap = np.load(io.BytesIO(raw.content))
    assert raw.headers["content-type"] == "application/octet-stream" and qmap.shape == (72, 96)
    assert qmap.dtype == np.float32 and 0 <= qmap.min() <= qmap.max() <= 1
    heatmap = client.get(first["perceptual"]["heatmap"])
    assert heatmap.headers["content-type"] == "image/png"
    assert Image.open(io.BytesIO(heatmap.content)).size == (96, 72)
    record = client.get(f"/v1/jobs/{bodies[1]['id']}/record").json()["indicators"]
    assert record["perceptual"]["file"] == "house.png" and "fingerprint" not in record["perceptual"]
    assert record["alignment"]["score"] == first["alignment"]["score"]
    report = client.get(bodies[1]["links"]["report"]).text
    assert report.count('src="data:image/') >= 3 and "pq-map" in report and "aq-map" in report


def test_refine_job_reports_progress_and_finishes(client: httpx.Client, house_png: bytes) -> None:
    answer = client.post("/v1/refine", files=_files(house_png), data={"prompt": PROMPT, "recipe": "tiny"})
    assert answer.status_code == 202, answer.text
    job = answer.json()
    assert answer.headers["location"] == f"/v1/jobs/{job['id']}" and job["status"] in {"queued", "running"}
    seen = _wait(client, job["id"], {"done", "failed", "cancelled"})
    final = seen[-1]
    assert final["status"] == "done", final["error"]
    progress = [v["progress"] for v in seen]
    assert progress == sorted(progress) and progress[-1] == 1.0 and final["phases"] == ROLES
    for view in seen:  # each view's progress is its finished steps' share
        assert (
            view["progress"] == pytest.approx(len(view["phases"]) / 5, abs=1e-3) or view["status"] == "done"
        )
    result = final["result"]
    refined = Image.open(io.BytesIO(client.get(result["image"]).content))
    assert refined.size == (96, 72)
    mask = Image.open(io.BytesIO(client.get(result["mask"]).content))
    assert (
        mask.size == (96, 72)
        and set(result["heatmaps"]) == {"pq", "aq"}
        and set(result["maps"]) == {"pq", "aq"}
    )
    record = client.get(final["links"]["record"]).json()
    assert record["status"] == "ok" and record["file"] == "house.png" and record["recipe"]["name"] == "tiny"
    assert set(record["scores"]) == {"perceptual", "alignment"} and record["stage1"]["steps"] >= 1
    report = client.get(final["links"]["report"]).text
    assert "house.png refined" in report and "PQ-Map" in report and "AQ-Map" in report
    assert final["expires"] > final["finished"]
    loads = client.get("/v1/health").json()["pipeline_loads"]
    again = client.post("/v1/refine", files=_files(house_png), data={"prompt": PROMPT}).json()
    assert _wait(client, again["id"], {"done", "failed"})[-1]["status"] == "done"
    health = client.get("/v1/health").json()
    assert health["pipeline_loads"] == loads and health["recipe_builds"] == {
        "tiny": 1
    }  # nothing loaded again
    assert client.delete(f"/v1/jobs/{again['id']}").status_code == 204
    assert client.get(f"/v1/jobs/{again['id']}").status_code == 404


def test_cancel_queued_and_running_jobs(client: httpx.Client, house_png: bytes) -> None:
    slow = {"prompt": PROMPT, "overrides": json.dumps({"refiner.iterations": 150})}
    running = client.post("/v1/refine", files=_files(house_png), data=slow).json()
    queued = client.post("/v1/refine", files=_files(house_png), data=slow).json()
    _wait(client, running["id"], {"running"})
    view = client.post(f"/v1/jobs/{queued['id']}/cancel")
    assert view.status_code == 202 and view.json()["status"] == "cancelled"  # a queued job stops at once
    assert client.delete(f"/v1/jobs/{running['id']}").json()["error"]["code"] == "job_running"
    client.post(f"/v1/jobs/{running['id']}/cancel")
    final = _wait(client, running["id"], {"done", "failed", "cancelled"})[-1]
    assert final["status"] == "cancelled" and final["error"]["message"] == "cancelled by a client"
    assert "stage2" not in final["phases"] and final["progress"] < 1 and final["result"] is None
    assert client.get(f"/v1/jobs/{running['id']}/record").json()["error"]["code"] == "not_done"


def test_client_that_disconnects_cancels_its_score(server, client: httpx.Client, house_png: bytes) -> None:  # type: ignore[no-untyped-def]
    slow = {"prompt": PROMPT, "overrides": json.dumps({"refiner.iterations": 30})}
    busy = client.post("/v1/refine", files=_files(house_png), data=slow).json()  # holds the one worker
    before = client.get("/v1/health").json()["jobs"].get("cancelled", 0)
    request = httpx.Request("POST", server.url + "/v1/score", files=_files(house_png))
    body = request.read()
    head = "".join(f"{k}: {v}\r\n" for k, v in request.headers.items() if k.lower() != "connection")
    with socket.create_connection(("127.0.0.1", server.port)) as sock:
        sock.sendall(f"POST /v1/score HTTP/1.1\r\n{head}Connection: close\r\n\r\n".encode() + body)
        deadline = time.monotonic() + 10
        while client.get("/v1/health").json()["queued"] < 1 and time.monotonic() < deadline:
            time.sleep(0.05)
    # the socket is closed: the waiting score is cancelled before any worker takes it
    deadline = time.monotonic() + 10
    while (
        client.get("/v1/health").json()["jobs"].get("cancelled", 0) == before and time.monotonic() < deadline
    ):
        time.sleep(0.1)
    assert client.get("/v1/health").json()["jobs"].get("cancelled", 0) == before + 1
    client.post(f"/v1/jobs/{busy['id']}/cancel")
    _wait(client, busy["id"], {"done", "failed", "cancelled"})


@pytest.mark.parametrize(
    ("data", "upload", "status", "code"),
    [
        ({}, b"this is not an image", 415, "not_an_image"),
        ({}, b"", 415, "not_an_image"),
        ({}, b"truncated", 422, "bad_image"),
        ({"recipe": "g-refin"}, None, 404, "unknown_recipe"),
        ({"overrides": '{"refiner.iterationz": 3}'}, None, 422, "bad_override"),
        ({"overrides": '{"refiner.iterations": true}'}, None, 422, "bad_override"),
        ({"overrides": "not json"}, None, 422, "bad_override"),
        ({"overrides": '{"stage1.model": "x"}'}, None, 422, "forbidden_override"),
        ({"overrides": '{"indicators.perceptual.weights": "/etc/passwd"}'}, None, 422, "forbidden_override"),
        ({"overrides": '{"stage1.negative_prompt": "https://example.com/x"}'}, None, 422, "bad_override"),
        ({"indicators": "alignment"}, None, 422, "prompt_required"),
        ({"indicators": "stage1"}, None, 422, "unknown_indicator"),
    ],
)
def test_bad_score_requests(
    client: httpx.Client, house_png: bytes, data: dict[str, str], upload: bytes | None, status: int, code: str
) -> None:
    if upload == b"truncated":
        upload = house_png[: len(house_png) // 2]
    answer = client.post("/v1/score", files=_files(house_png if upload is None else upload), data=data)
    assert answer.status_code == status, answer.text
    error = answer.json()["error"]
    assert error["code"] == code and error["status"] == status and error["message"]


def test_other_bad_requests(client: httpx.Client, house_png: bytes) -> None:
    cases = [
        (client.post("/v1/score", data={"prompt": "x"}), 422, "bad_request"),  # no image
        (client.post("/v1/refine", files=_files(house_png)), 422, "prompt_required"),  # tiny reads one
        (client.post("/v1/refine", files=_files(house_png), data={"prompt": ""}), 422, "prompt_required"),
        (client.post("/v1/refine", data={"prompt": "x"}), 422, "bad_request"),  # no image
        (client.get("/v1/jobs/0123456789abcdef01234567"), 404, "unknown_job"),
        (client.get("/v1/jobs/../../etc"), 404, "not_found"),
        (client.get("/v1/nothing"), 404, "not_found"),
    ]
    for answer, status, code in cases:
        assert answer.status_code == status, answer.text
        assert answer.json()["error"]["code"] == code, answer.text
    done = client.post("/v1/score", files=_files(house_png)).json()
    for name in ("job.json", "upload/house.png", "../../../etc/passwd", "result/perceptual/reports.jsonl"):
        answer = client.get(f"/v1/jobs/{done['id']}/files/{name}")
        assert answer.status_code == 404, name  # only the files the result names are served
