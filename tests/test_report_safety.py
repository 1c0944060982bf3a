"""``grefine report`` on hostile, malformed and interrupted folders (issue 20, items 2, 4, 6, 8,
18): every field is escaped (checked in headless Chromium), malformed content is a row's error
or one exit-2 line, an interrupted score run is reported as one, score reports show AQ-Map's
phrases in one score column, and the page is never written through a link."""

from __future__ import annotations

import csv
import json
import os
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from grefine_kit.cli import cli
from grefine_kit.report import build_report, collect

RANDOM_NOTE = "random-weight model (a test or demo setup)"

EXAMPLE = Path(__file__).resolve().parents[1] / "grefine_kit" / "data" / "example.png"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
REQUIRED = os.environ.get("GREFINE_REQUIRE_CHROMIUM") == "1"  # set by .ci/run

PWNED = "document.title='pwned'"
HOSTILE = [
    f"<script>{PWNED}</script>",
    f'"><img src=x onerror="{PWNED}">',
    f"'><svg onload={PWNED}>",
    f"</td></tr></table><script>{PWNED}</script>",
    f'<iframe srcdoc="<script>parent.{PWNED}</script>"></iframe>',
]
#: file names cannot hold "/": these still break out of an attribute or start an element
HOSTILE_NAMES = [f'"><img src=x onerror="{PWNED}">', f"'><svg onload={PWNED}>", "<b onmouseover=alert(1)>"]


def _png(path: Path, value: int = 90) -> Path:
    Image.new("RGB", (24, 16), (value, 40, 200 - value)).save(path)
    return path


def _hostile(i: int) -> str:
    return HOSTILE[i % len(HOSTILE)]


def _refine_record(i: int, name: str, folder: Path) -> dict[str, Any]:
    stem = Path(name).stem
    _png(folder / name, 30 * i)
    _png(folder / f"{stem}.pq.heatmap.png", 200)
    Image.new("L", (24, 16), 255).save(folder / f"{stem}.mask.png")
    h = _hostile
    phrase = {"text": h(i), "noun": h(i + 1), "ancestor": h(i + 2), "phrase_score": h(i + 3),
              "noun_score": 0.5, "defect": h(i + 4)}  # fmt: skip
    return {
        "id": h(i), "file": h(i + 1), "output": name, "prompt": h(i + 2), "status": "ok",
        "scores": {h(i + 3): 0.5, "alignment": h(i + 4)}, "mask_area": h(i),
        "stage1": {"strength": h(i), "steps": h(i + 1), "steps_run": h(i + 2)},
        "stage2": {"skipped": h(i + 3)},
        "maps": {"alignment": {"details": {"backbone": h(i), "report": {"phrases": [phrase, h(i)]}}}},
    }  # fmt: skip


@pytest.fixture()
def hostile_refine(tmp_path: Path) -> Path:
    folder = tmp_path / f"run {HOSTILE_NAMES[2]}"
    folder.mkdir()
    records = [_refine_record(i, f"{n}.png", folder) for i, n in enumerate(HOSTILE_NAMES)]
    records.append({"id": "bad", "output": HOSTILE[3], "status": HOSTILE[0], "error": HOSTILE[1]})
    (folder / "reports.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    return folder


@pytest.fixture()
def hostile_score(tmp_path: Path) -> Path:
    folder = tmp_path / "score"
    folder.mkdir()
    rows = []
    for i, name in enumerate(HOSTILE_NAMES):
        _png(folder / f"{name}.heatmap.png", 20 * i)
        phrases = [{"text": _hostile(i + 2), "defect": _hostile(i)}]
        rows.append({"file": f"{name}.png", "status": "ok", "score": 0.1 * i, "indicator": _hostile(i),
                     "prompt": _hostile(i + 1), "heatmap": f"{name}.heatmap.png", "error": None,
                     "details": {"report": {"phrases": phrases}}})  # fmt: skip
    rows.append({"file": HOSTILE[0], "status": "error", "score": HOSTILE[1], "indicator": HOSTILE[2],
                 "error": HOSTILE[3]})  # fmt: skip
    lines = "".join(json.dumps(r) + "\n" for r in rows)
    (folder / "reports.jsonl").write_text(lines)
    (folder / "results.jsonl").write_text(lines)  # as --format json writes it
    return folder


def _chromium(*args: str, profile: Path) -> subprocess.CompletedProcess[str]:
    assert CHROMIUM is not None
    flags = [
        "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--no-first-run", f"--user-data-dir={profile}",
    ]  # fmt: skip
    return subprocess.run([CHROMIUM, *flags, *args], capture_output=True, text=True, timeout=120)


# --- 4. every field escaped ------------------------------------------------------------------


class _Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.handlers: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        self.handlers += [f"{tag} {name}" for name, _ in attrs if name.startswith("on")]


#: every element the page itself uses; data never adds one
PAGE_TAGS = {"html", "head", "meta", "title", "style", "body", "h1", "div", "span", "table", "thead",
             "tbody", "tr", "th", "td", "img", "input", "figure", "figcaption", "pre", "script"}  # fmt: skip


def _no_markup_from_data(page: str) -> None:
    parser = _Tags()
    parser.feed(page)
    assert parser.tags.count("script") == 1 and not parser.handlers, parser.handlers
    assert set(parser.tags) <= PAGE_TAGS, set(parser.tags) - PAGE_TAGS


def test_4_every_field_is_escaped(hostile_refine: Path, hostile_score: Path, tmp_path: Path) -> None:
    for folder in (hostile_refine, hostile_score):
        page = build_report(folder, tmp_path / f"{folder.name[:5]}.html").read_text()
        _no_markup_from_data(page)
        assert "&lt;script&gt;" in page


@pytest.mark.skipif(
    CHROMIUM is None and not REQUIRED, reason="chromium is not installed (apt-get install chromium)"
)
@pytest.mark.parametrize("kind", ["refine", "score"])
def test_4_no_script_runs_in_headless_chromium(
    hostile_refine: Path, hostile_score: Path, tmp_path: Path, kind: str
) -> None:
    assert CHROMIUM is not None, "GREFINE_REQUIRE_CHROMIUM=1 but no chromium on PATH"
    folder = hostile_refine if kind == "refine" else hostile_score
    page = build_report(folder, tmp_path / "report.html")
    proc = _chromium(
        "--virtual-time-budget=3000", "--dump-dom", f"{page.as_uri()}#selftest", profile=tmp_path / "p"
    )
    dom = proc.stdout
    title = re.search(r"<title>(.*?)</title>", dom, re.S)
    assert title is not None, dom[-2000:] + proc.stderr[-2000:]
    assert title.group(1).startswith("grefine report: ") and "pwned" not in title.group(1)
    selftest = re.search(r'<pre id="selftest"[^>]*>(.*?)</pre>', dom, re.S)
    assert selftest and selftest.group(1), "the page's own script must still run"
    _no_markup_from_data(dom)


# --- 6. malformed folders ---------------------------------------------------------------------


def _report(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, ["report", *args])
    return result.exit_code, result.stderr


def _one_line(code: int, err: str) -> None:
    assert code == 2 and "Traceback" not in err, err
    assert len([line for line in err.splitlines() if line.startswith("grefine: error:")]) == 1, err


def test_6_malformed_folders_give_a_page_or_one_line(tmp_path: Path) -> None:
    log = tmp_path / "log"
    log.mkdir()
    good = {"id": "a.png", "output": "a.png", "status": "ok", "scores": {"perceptual": 0.5}}
    (log / "reports.jsonl").write_text(json.dumps(good) + '\n[1,2]\n"text"\n{"id": "cut')
    code, err = _report(str(log))
    assert code == 0, err
    _, items = collect(log)
    assert [i.status for i in items] == ["ok", "error", "error", "error"]

    parts = tmp_path / "parts"
    parts.mkdir()
    (parts / "a.report.json").write_text(json.dumps(good))
    (parts / "b.report.json").write_text(json.dumps(good)[:20])  # truncated
    (parts / "c.report.json").write_text("[]")
    code, err = _report(str(parts))
    assert code == 0, err
    assert sorted(i.status for i in collect(parts)[1]) == ["error", "error", "ok"]

    scores = tmp_path / "scores"
    scores.mkdir()
    with (scores / "results.csv").open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerows([["file", "status", "score"], ["a.png", "ok", "abc"], ["b.png", "ok", "0.5"],
                     ["c.png", "ok", "nan"], ["d.png", "ok", ""]])  # fmt: skip
    code, err = _report(str(scores))
    assert code == 0, err
    items = collect(scores)[1]
    assert [i.sort_score for i in items] == [None, 0.5, None, None]
    assert items[0].status == "error" and "not a number" in items[0].error

    _one_line(*_report(str(scores), "--out", str(tmp_path / "missing" / "r.html")))
    _one_line(*_report(str(tmp_path / "nowhere")))
    _one_line(*_report(str(scores), "--out", str(tmp_path)))
    _one_line(*_report(str(scores / "results.csv")))
    _one_line(*_report(str(tmp_path / "a\0b")))
    _one_line(*_report(str(scores), "--out", str(tmp_path / "a\0b.html")))
    _one_line(*_report(str(scores), "--out", str(tmp_path / ("n" * 300 + ".html"))))


# --- 2. the page is never written through a link ----------------------------------------------


def test_2_a_linked_report_html_is_replaced_not_followed(hostile_score: Path, tmp_path: Path) -> None:
    victim = tmp_path / "victim.txt"
    victim.write_text("precious\n")
    (hostile_score / "report.html").symlink_to(victim)
    (hostile_score / "x.heatmap.png").symlink_to(_png(tmp_path / "private.png"))
    with (hostile_score / "reports.jsonl").open("a") as fh:
        fh.write(
            json.dumps({"file": "x.png", "status": "ok", "score": 0.5, "heatmap": "x.heatmap.png"}) + "\n"
        )
        fh.write(
            json.dumps({"file": "y.png", "status": "ok", "score": 0.5, "heatmap": "../private.png"}) + "\n"
        )
    code, err = _report(str(hostile_score))
    assert code == 0, err
    assert victim.read_text() == "precious\n" and not (hostile_score / "report.html").is_symlink()
    items = {i.name: i for i in collect(hostile_score)[1]}
    assert not items["x.png"].heatmaps and not items["y.png"].heatmaps  # no file pulled in via a link


def test_2_a_linked_log_is_refused_in_one_line(tmp_path: Path) -> None:
    (tmp_path / "outside.jsonl").write_text('{"id": "a", "output": "a.png"}\n')
    folder = tmp_path / "run"
    folder.mkdir()
    (folder / "reports.jsonl").symlink_to(tmp_path / "outside.jsonl")
    _one_line(*_report(str(folder)))


# --- 8 and 18: score runs, interrupted or not -------------------------------------------------


@pytest.fixture(scope="module")
def aq_score(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("aq")
    base = Image.open(EXAMPLE).convert("RGB").resize((96, 72))
    base.save(tmp / "house.png")
    noise = np.random.default_rng(2).integers(0, 256, (72, 96, 3), dtype=np.uint8)
    Image.fromarray(noise).save(tmp / "noise.png")
    out = tmp / "out"
    result = CliRunner().invoke(
        cli,
        ["score", str(tmp / "house.png"), str(tmp / "noise.png"), "--recipe", "tiny", "--indicator",
         "aq-map", "--prompt", "a red house with a blue door", "--out", str(out)],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    return out


def test_8_an_interrupted_score_run_is_reported_as_a_score_run(aq_score: Path, tmp_path: Path) -> None:
    folder = tmp_path / "interrupted"
    shutil.copytree(aq_score, folder)
    (folder / "results.csv").unlink()  # what a kill before the results view leaves
    kind, items = collect(folder)
    assert kind == "score" and len(items) == 2
    assert all(i.scores["aq-map"] is not None for i in items)
    page = build_report(folder).read_text()
    assert "grefine score run: 2 image(s)" in page and "grefine refine run" not in page


def test_18_score_report_shows_phrases_in_one_score_column(aq_score: Path, tmp_path: Path) -> None:
    kind, items = collect(aq_score)
    assert kind == "score" and all(i.phrases for i in items)  # the log's details hold them
    page = build_report(aq_score, tmp_path / "r.html").read_text()
    header = re.search(r"<thead>(.*?)</thead>", page, re.S)
    assert header is not None
    titles = re.findall(r"<th[^>]*>(.*?)</th>", header.group(1))
    assert titles == ["image", "aq-map", "image", "maps", "phrases (AQ-Map)"]
    assert page.count("<th>phrase</th>") == 2 and "<td>house</td>" in page
    # the tiny recipe's CLIP has random weights: said on top and, shorter, on every row
    assert page.count(RANDOM_NOTE) == 1 and page.count("random weights: maps and scores are meaningless") == 2
