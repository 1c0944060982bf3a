"""Runs at scale: manifests, shards, batching, the engine kind, ids and seeds (docs/scale.md)."""

from __future__ import annotations

import hashlib
import json
import pickle
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from grefine_kit.cli import cli
from grefine_kit.errors import UserError
from grefine_kit.runner.options import RunOptions
from grefine_kit.runner.refine import refine_files, refine_items
from grefine_kit.runs.items import Item
from grefine_kit.runs.manifest import read_manifest
from grefine_kit.runs.shards import Shard, parse_shard, shard_index

PROMPT = "a red house with a blue door"


def _digests(*folders: Path) -> dict[str, str]:
    out: dict[str, str] = {}
    for folder in folders:
        for f in folder.iterdir():
            if f.suffix in (".png", ".npy"):
                out[f.name] = hashlib.sha256(f.read_bytes()).hexdigest()
    return out


_CLOCK = ("seconds", "seconds_total", "timings")


def _records(folder: Path) -> dict[str, dict[str, Any]]:
    """The records by id (the last one of each)."""
    recs = [json.loads(line) for line in (folder / "reports.jsonl").read_text().splitlines()]
    return {r["id"]: r for r in recs}


def _differences(a: Any, b: Any, where: str = "") -> list[str]:
    """Where two records differ, ignoring wall-clock fields; floats may differ by 1e-6
    (relative): a batched CLIP forward rounds differently from a single one (~1e-8 on scores).
    The written PNG/NPY bytes are compared exactly, elsewhere."""
    if isinstance(a, dict) and isinstance(b, dict):
        keys = (set(a) | set(b)) - set(_CLOCK)
        return [d for k in sorted(keys) for d in _differences(a.get(k), b.get(k), f"{where}.{k}")]
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        return [
            d for i, (x, y) in enumerate(zip(a, b, strict=True)) for d in _differences(x, y, f"{where}[{i}]")
        ]
    if isinstance(a, float) and isinstance(b, float):
        return [] if abs(a - b) <= 1e-6 * max(1.0, abs(a), abs(b)) else [f"{where}: {a} != {b}"]
    return [] if a == b else [f"{where}: {a!r} != {b!r}"]


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """Seven small images in two folders, two of them ``cat.png`` with the same pixels."""
    root = tmp_path_factory.mktemp("inputs")
    rng = np.random.default_rng(3)
    (root / "a").mkdir()
    (root / "b").mkdir()
    files = []
    for i in range(5):
        p = root / ("a" if i % 2 else "b") / f"img{i}.png"
        Image.fromarray((rng.random((24 + 4 * i, 32, 3)) * 255).astype(np.uint8)).save(p)
        files.append(p)
    cat = (rng.random((24, 32, 3)) * 255).astype(np.uint8)
    for sub in ("a", "b"):
        Image.fromarray(cat).save(root / sub / "cat.png")
        files.append(root / sub / "cat.png")
    return files


@pytest.fixture(scope="module")
def recipe() -> Any:
    from grefine_kit.recipes.recipe import Recipe

    return Recipe.load("tiny")


@pytest.fixture(scope="module")
def unsharded(images: list[Path], recipe: Any, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("whole")
    summary = refine_files(images, recipe, out, prompts=PROMPT, save_maps=True, progress=False, batch_size=1)
    assert summary.n_ok == len(images)
    return out


# -- ids and seeds ---------------------------------------------------------------------------


def test_same_named_files_in_two_folders_get_different_ids_seeds_and_outputs(unsharded: Path) -> None:
    recs = _records(unsharded)
    assert {"a/cat.png", "b/cat.png"} <= set(recs)
    a, b = recs["a/cat.png"], recs["b/cat.png"]
    assert a["seed"] != b["seed"]
    assert a["output"] != b["output"]
    pixels_a = np.asarray(Image.open(unsharded / a["output"]))
    pixels_b = np.asarray(Image.open(unsharded / b["output"]))
    assert not np.array_equal(pixels_a, pixels_b)  # same input pixels, other noise


# -- batching and sharding -------------------------------------------------------------------


def test_batched_refine_gives_the_same_bytes_as_one_at_a_time(
    images: list[Path], recipe: Any, unsharded: Path, tmp_path: Path
) -> None:
    summary = refine_files(
        images, recipe, tmp_path, prompts=PROMPT, save_maps=True, progress=False, batch_size=4
    )
    assert summary.n_ok == len(images)
    assert _digests(tmp_path) == _digests(unsharded)
    assert _differences(_records(tmp_path), _records(unsharded)) == []


def test_the_union_of_two_shards_is_the_unsharded_run_byte_for_byte(
    images: list[Path], recipe: Any, unsharded: Path, tmp_path: Path
) -> None:
    outs = []
    for i in range(2):
        out = tmp_path / f"shard{i}"
        s = refine_files(
            images, recipe, out, prompts=PROMPT, save_maps=True, progress=False, shard=Shard(i, 2)
        )
        assert s.n_failed == 0 and s.n_ok + s.n_other_shards == len(images)
        outs.append(out)
    first, second = (set(_records(o)) for o in outs)
    assert first and second and not first & second  # a real split, no item twice
    assert _digests(*outs) == _digests(unsharded)
    merged = _records(outs[0]) | _records(outs[1])
    assert _differences(merged, _records(unsharded)) == []


def test_shards_run_one_after_another_into_one_folder_make_the_whole(
    images: list[Path], recipe: Any, unsharded: Path, tmp_path: Path
) -> None:
    for i in range(3):
        refine_files(
            images, recipe, tmp_path, prompts=PROMPT, save_maps=True, progress=False, shard=Shard(i, 3)
        )
    assert _digests(tmp_path) == _digests(unsharded)
    again = refine_files(images, recipe, tmp_path, prompts=PROMPT, save_maps=True, progress=False)
    assert again.n_skipped == len(images) and again.n_ok == 0


def test_shard_index_is_a_stable_partition() -> None:
    ids = [f"folder/{i}.png" for i in range(400)]
    for n in (1, 2, 5):
        parts = [Shard(i, n).select(ids, ids) for i in range(n)]
        assert sorted(x for p in parts for x in p) == sorted(ids)
        assert all(len(p) > 400 / n * 0.7 for p in parts)  # roughly even
    assert [shard_index(i, 7) for i in ids] == [shard_index(i, 7) for i in ids]
    assert Shard(1, 3).select(ids[::-1], ids[::-1]) == Shard(1, 3).select(ids, ids)[::-1]


@pytest.mark.parametrize(("text", "message"), [("2/2", "0 to 1"), ("1/0", "at least 1"), ("a/b", "I/N")])
def test_bad_shard_specs_are_one_clear_error(text: str, message: str) -> None:
    with pytest.raises(UserError, match=message):
        parse_shard(text)
    assert parse_shard(" 1 / 4 ") == Shard(1, 4)


def test_score_shards_into_one_folder_give_the_unsharded_results(images: list[Path], tmp_path: Path) -> None:
    from grefine_kit.api import build_indicator
    from grefine_kit.runner.score import score_files

    indicator = build_indicator("pq-map", recipe="tiny")
    whole = score_files(images, indicator, tmp_path / "whole", progress=False)
    for i in range(2):
        score_files(images, indicator, tmp_path / "parts", progress=False, shard=Shard(i, 2))
    assert (tmp_path / "parts" / "results.csv").read_text() == whole.results_path.read_text()
    assert _digests(tmp_path / "parts") == _digests(tmp_path / "whole")


def test_score_with_a_portable_spec_matches_the_built_indicator(images: list[Path], tmp_path: Path) -> None:
    from grefine_kit.runner.score import score_files
    from grefine_kit.runner.score_work import IndicatorSpec, ScoreWork

    spec = IndicatorSpec("pq-map", recipe="tiny")
    built = score_files(images[:3], spec.build(), tmp_path / "built", progress=False)
    lazy = score_files(images[:3], pickle.loads(pickle.dumps(spec)), tmp_path / "lazy", progress=False)
    assert (built.n_ok, lazy.n_ok) == (3, 3)
    assert (tmp_path / "built" / "results.csv").read_text() == (tmp_path / "lazy" / "results.csv").read_text()
    # a pickled work carries the spec, never the built indicator
    work = ScoreWork(spec, spec.build(), tmp_path)
    copy = pickle.loads(pickle.dumps(work))
    assert copy.portable and copy.built is None and copy.spec == spec


def test_a_refine_work_survives_pickling_and_rebuilds_the_same_refiner(
    images: list[Path], recipe: Any, unsharded: Path, tmp_path: Path
) -> None:
    """What an engine in another process does: unpickle the work, open it, run tasks."""
    from grefine_kit.runner.refine import RefineJob
    from grefine_kit.runner.run import plan_tasks
    from grefine_kit.runs.folder import RunFolder
    from grefine_kit.runs.items import make_items
    from grefine_kit.runs.layout import output_stems

    items = make_items(images, PROMPT)
    job = RefineJob.of(recipe, save_maps=True)
    work = job.work(tmp_path)
    assert work.portable
    copy = pickle.loads(pickle.dumps(work))
    assert copy.built is None  # the built Refiner stays here: the copy rebuilds from the recipe
    with RunFolder.open(tmp_path, inputs=images) as folder:
        pairs = list(zip(items, output_stems(images), strict=True))
        tasks, _ = plan_tasks(folder, pairs, job.fingerprints, job, resume=True)
        tasks = pickle.loads(pickle.dumps(tasks))
        for record in copy.open().process(tasks[:2]):
            assert record["status"] == "ok"
            folder.append(record)
    mine = {n: d for n, d in _digests(tmp_path).items()}
    assert mine and all(_digests(unsharded)[n] == d for n, d in mine.items())


# -- manifests -------------------------------------------------------------------------------


def _write_manifest(folder: Path, kind: str, rows: list[dict[str, Any]]) -> Path:
    path = folder / f"items.{kind}"
    if kind == "csv":
        import csv

        with path.open("w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=["id", "image", "prompt", "seed"])
            w.writeheader()
            w.writerows(rows)
    elif kind == "jsonl":
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    else:
        import pyarrow as pa
        import pyarrow.parquet as pq

        pq.write_table(pa.Table.from_pylist(rows), path)
    return path


@pytest.mark.parametrize("kind", ["csv", "jsonl", "parquet"])
def test_manifests_in_every_format_give_the_same_items(kind: str, tmp_path: Path) -> None:
    if kind == "parquet":
        pytest.importorskip("pyarrow")
    (tmp_path / "imgs").mkdir()
    rows: list[dict[str, Any]] = [
        {"id": "one", "image": "imgs/x.png", "prompt": "a cat", "seed": 5},
        {"id": "", "image": "imgs/y.png", "prompt": "", "seed": None},
    ]
    if kind == "csv":
        rows[1]["seed"] = ""
    items = read_manifest(_write_manifest(tmp_path, kind, rows))
    assert items == [
        Item(id="one", image=tmp_path / "imgs" / "x.png", prompt="a cat", seed=5),
        Item(id="imgs/y.png", image=tmp_path / "imgs" / "y.png", prompt=None, seed=None),
    ]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("id,prompt\nx,a cat\n", "missing column 'image'"),
        ("id,image\nx,a.png\nx,b.png\n", "line 3: duplicate id 'x'"),
        ("image,seed\na.png,1.5\n", "line 2: seed must be an integer"),
        ("image,seed\na.png,-1\n", "seed must be 0 to"),
        ("", "empty manifest"),
        ("image\n", "lists no images"),
        ('image\n"a.png\n', "line"),
    ],
)
def test_bad_manifests_are_one_clear_error_naming_the_line(text: str, message: str, tmp_path: Path) -> None:
    path = tmp_path / "m.csv"
    path.write_text(text)
    with pytest.raises(UserError, match=message):
        read_manifest(path)


def test_bad_jsonl_and_unknown_formats(tmp_path: Path) -> None:
    (tmp_path / "m.jsonl").write_text('{"image": "a.png"}\n[1, 2]\n')
    with pytest.raises(UserError, match="line 2: expected a JSON object"):
        read_manifest(tmp_path / "m.jsonl")
    (tmp_path / "m.txt").write_text("image\na.png\n")
    with pytest.raises(UserError, match="unknown manifest format"):
        read_manifest(tmp_path / "m.txt")
    with pytest.raises(UserError, match="not found"):
        read_manifest(tmp_path / "nope.csv")


def test_refine_from_a_manifest_records_a_missing_file_and_goes_on(
    images: list[Path], recipe: Any, unsharded: Path, tmp_path: Path
) -> None:
    root = images[0].parent.parent
    rows = [{"id": "a/cat.png", "image": str(root / "a" / "cat.png"), "prompt": PROMPT}]
    rows += [{"id": "gone", "image": "missing.png", "prompt": PROMPT}]
    rows += [{"id": "b/cat.png", "image": str(root / "b" / "cat.png"), "prompt": PROMPT}]
    manifest = _write_manifest(tmp_path, "jsonl", rows)
    out = tmp_path / "out"
    summary = refine_items(read_manifest(manifest), recipe, out, RunOptions(save_maps=True, progress=False))
    assert (summary.n_ok, summary.n_failed) == (2, 1)
    recs = _records(out)
    assert "missing.png" in recs["gone"]["error"]
    # the same ids and seeds as the folder run: the same bytes (output names follow the files)
    whole = _records(unsharded)
    for item_id in ("a/cat.png", "b/cat.png"):
        assert recs[item_id]["seed"] == whole[item_id]["seed"]


def test_a_manifest_seed_replaces_the_recipe_seed(images: list[Path], recipe: Any, tmp_path: Path) -> None:
    rows = [{"id": "x", "image": str(images[0]), "prompt": PROMPT, "seed": 11}]
    out = tmp_path / "out"
    refine_items(
        read_manifest(_write_manifest(tmp_path, "jsonl", rows)), recipe, out, RunOptions(progress=False)
    )
    rows[0]["seed"] = 12
    again = refine_items(
        read_manifest(_write_manifest(tmp_path, "jsonl", rows)), recipe, out, RunOptions(progress=False)
    )
    assert again.n_skipped == 0 and again.redo_reasons  # another seed: redone, and it says why
    assert "seed" in next(iter(again.redo_reasons))


# -- the command line ------------------------------------------------------------------------


def test_cli_refine_with_a_manifest_and_a_shard(images: list[Path], unsharded: Path, tmp_path: Path) -> None:
    rows = [
        {"id": str(p.relative_to(images[0].parent.parent)), "image": str(p), "prompt": PROMPT} for p in images
    ]
    manifest = _write_manifest(tmp_path, "csv", rows)
    out = tmp_path / "out"
    for i in range(2):
        args = ["refine", "--manifest", str(manifest), "--recipe", "tiny", "--out", str(out), "--maps"]
        result = CliRunner().invoke(cli, [*args, "--shard", f"{i}/2", "--batch-size", "3"])
        assert result.exit_code == 0, result.output
        assert f"shard {i}/2" in result.stderr
    assert _digests(out) == _digests(unsharded)


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--engine", "nope"], "unknown engine 'nope'"),
        (["--workers", "2"], "local engine runs one worker"),
        (["--address", "auto"], "--address needs a cluster engine"),
        (["--shard", "3/2"], "the index must be 0 to 1"),
    ],
)
def test_cli_scale_option_errors_are_one_line(
    extra: list[str], message: str, images: list[Path], tmp_path: Path
) -> None:
    args = [
        "refine",
        str(images[0]),
        "--prompt",
        "p",
        "--recipe",
        "tiny",
        "--out",
        str(tmp_path / "o"),
        *extra,
    ]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 2, result.output
    assert message in result.output and "Traceback" not in result.output


def test_cli_manifest_and_paths_conflict(images: list[Path], tmp_path: Path) -> None:
    manifest = _write_manifest(tmp_path, "csv", [{"id": "x", "image": str(images[0]), "prompt": "p"}])
    result = CliRunner().invoke(
        cli,
        [
            "score",
            str(images[0]),
            "--manifest",
            str(manifest),
            "--recipe",
            "tiny",
            "--out",
            str(tmp_path / "o"),
        ],
    )
    assert result.exit_code == 2 and "PATHS or --manifest" in result.output
    result = CliRunner().invoke(cli, ["refine", "--recipe", "tiny", "--out", str(tmp_path / "o")])
    assert result.exit_code == 2 and "--manifest FILE" in result.output


# -- the engine kind -------------------------------------------------------------------------


def test_the_local_engine_passes_the_engine_conformance_check(tmp_path: Path) -> None:
    from grefine_kit.engines import get_engine
    from grefine_kit.parts.registry import get_registry
    from grefine_kit.testing import check_engine

    assert "local" in get_registry().names("engine")
    check_engine(get_engine("local"), tmp_path)


def test_an_engine_plugin_is_found_through_the_hook(register_plugin: Any, tmp_path: Path) -> None:
    from grefine_kit import hookimpl
    from grefine_kit.engines.local import LocalEngine
    from grefine_kit.testing import check_engine

    class Reversed(LocalEngine):
        """Runs batches last first: order is free, exactly-once is not."""

        def run(self, work: Any, tasks: Any, *, batch_size: int, on_start: Any = None) -> Any:
            return iter(list(super().run(work, list(tasks)[::-1], batch_size=batch_size, on_start=on_start)))

    class Plugin:
        @hookimpl
        def register_engines(self, register: Any) -> None:
            register("reversed", Reversed, summary="for the test")

    registry = register_plugin(Plugin())
    engine = registry.create("engine", "reversed", {})
    check_engine(engine, tmp_path)


# -- the text cache across images ------------------------------------------------------------


def test_aq_map_encodes_each_distinct_phrase_once_across_images_and_batches() -> None:
    """Phrases repeat across a dataset: the text tower sees each distinct text once."""
    from grefine_kit.api import build_indicator
    from grefine_kit.testing import sample_images

    aq = build_indicator("aq-map", recipe="tiny", parser="rules")
    backbone = aq.load()
    backbone.clear_caches()
    seen: list[str] = []
    tokenize = backbone.tokenize

    def counting(texts: Any) -> Any:
        seen.extend(texts)
        return tokenize(texts)

    backbone.tokenize = counting  # type: ignore[method-assign]
    try:
        image = sample_images(((40, 32),))[0]
        first = aq.score([image], ["a red cat on a blue mat"])
        n_first = len(seen)
        assert n_first > 0 and len(set(seen)) == n_first
        again = aq.score([image, image], ["a red cat on a blue mat", "a red cat on a blue mat"])
        assert len(seen) == n_first  # nothing new to encode
        aq.score([image], ["a red cat near a green tree"])
        new = seen[n_first:]
        assert new and not set(new) & set(seen[:n_first])  # only the texts not seen before
    finally:
        backbone.tokenize = tokenize  # type: ignore[method-assign]
    assert np.array_equal(first[0].map, again[1].map)


def test_text_features_do_not_depend_on_the_other_texts_of_a_call() -> None:
    """The same bytes for a text whatever was encoded with it (shards, engines, batches)."""
    from grefine_kit.models.loading import BackboneSpec, get_backbone
    from grefine_kit.testing import TINY_BACKBONE

    backbone = get_backbone(BackboneSpec(**TINY_BACKBONE))
    backbone.clear_caches()
    alone = backbone.encode_text(["a cat"]).clone()
    backbone.clear_caches()
    mixed = backbone.encode_text(["a much longer text about a red house with a blue door", "a cat", "dog"])
    backbone.clear_caches()
    assert torch_equal(alone[0], mixed[1])


def torch_equal(a: Any, b: Any) -> bool:
    import torch

    return bool(torch.equal(a, b))


def test_cli_score_through_another_engine_ships_a_portable_builder(
    register_plugin: Any, images: list[Path], tmp_path: Path
) -> None:
    """A non-local engine gets work it can pickle (an indicator builder), and the same results."""
    from grefine_kit import hookimpl
    from grefine_kit.engines.local import LocalEngine

    seen: list[bool] = []

    class Pickling(LocalEngine):
        def run(self, work: Any, tasks: Any, *, batch_size: int, on_start: Any = None) -> Any:
            seen.append(work.portable)
            copy = pickle.loads(pickle.dumps(work))  # what a Ray actor receives
            return super().run(copy, pickle.loads(pickle.dumps(list(tasks))), batch_size=batch_size)

    class Plugin:
        @hookimpl
        def register_engines(self, register: Any) -> None:
            register("pickling", Pickling)

    register_plugin(Plugin())
    args = ["score", *map(str, images[:3]), "--recipe", "tiny", "--set", "alpha=[0.5, 0.5, 0.5]"]
    local = CliRunner().invoke(cli, [*args, "--out", str(tmp_path / "local")])
    other = CliRunner().invoke(cli, [*args, "--out", str(tmp_path / "other"), "--engine", "pickling"])
    assert local.exit_code == 0 and other.exit_code == 0, other.output
    assert seen == [True]
    assert (tmp_path / "local" / "results.csv").read_text() == (
        tmp_path / "other" / "results.csv"
    ).read_text()
