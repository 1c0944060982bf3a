"""Expanding PATH arguments and reading prompts CSVs (grefine_kit.runs.inputs)."""

from __future__ import annotations

from pathlib import Path

import pytest

from grefine_kit.errors import UserError
from grefine_kit.runs.inputs import PromptIndex, expand_inputs, read_prompts_csv


def touch(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"x")
    return path


@pytest.fixture
def tree(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for name in [
        "b.png",
        "a.JPG",
        "c.webp",
        "notes.txt",
        ".hidden.png",
        "sub/d.png",
        "sub/deeper/e.tif",
        ".git/f.png",
    ]:
        touch(tmp_path / "imgs" / name)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def names(paths: list[Path]) -> list[str]:
    return [p.as_posix() for p in paths]


def test_folder_is_flat_sorted_and_images_only(tree: Path) -> None:
    assert names(expand_inputs(["imgs"])) == ["imgs/a.JPG", "imgs/b.png", "imgs/c.webp"]


def test_recursive_folder_skips_hidden(tree: Path) -> None:
    got = names(expand_inputs(["imgs"], recursive=True))
    assert got == ["imgs/a.JPG", "imgs/b.png", "imgs/c.webp", "imgs/sub/d.png", "imgs/sub/deeper/e.tif"]


def test_globs_including_double_star(tree: Path) -> None:
    assert names(expand_inputs(["imgs/*.png"])) == ["imgs/b.png"]
    assert names(expand_inputs(["imgs/**/*.png"])) == ["imgs/b.png", "imgs/sub/d.png"]
    assert names(expand_inputs(["imgs/*"])) == ["imgs/a.JPG", "imgs/b.png", "imgs/c.webp"]


def test_explicit_files_keep_argument_order_and_any_extension(tree: Path) -> None:
    got = names(expand_inputs(["imgs/notes.txt", "imgs/c.webp", "imgs"]))
    assert got == ["imgs/notes.txt", "imgs/c.webp", "imgs/a.JPG", "imgs/b.png"]


def test_duplicates_are_removed_by_resolved_path(tree: Path) -> None:
    got = names(
        expand_inputs(["./imgs/b.png", "imgs/b.png", str(tree / "imgs" / "b.png"), "imgs/*.png", "imgs"])
    )
    assert got == ["imgs/b.png", "imgs/a.JPG", "imgs/c.webp"]


def test_missing_paths_are_listed_together(tree: Path) -> None:
    with pytest.raises(UserError) as info:
        expand_inputs(["imgs/b.png", "nope.png", "imgs/*.gif", "gone/"])
    message = str(info.value)
    for part in ("nope.png", "imgs/*.gif (no image matches)", "gone/"):
        assert part in message
    assert "imgs/b.png" not in message


def test_no_images_at_all(tree: Path) -> None:
    (tree / "empty").mkdir()
    with pytest.raises(UserError, match="no image files found in empty"):
        expand_inputs(["empty"])


# --- prompts CSV -----------------------------------------------------------------------


def write(path: Path, text: str, encoding: str = "utf-8") -> Path:
    path.write_text(text, encoding=encoding)
    return path


def test_read_prompts_csv_basic(tmp_path: Path) -> None:
    csv_path = write(
        tmp_path / "p.csv",
        'image,prompt,score\ncat.png,"a cat, sitting",3\n\n'
        'sub\\dog.png,a dog  ,4\ncat.png,"a cat, sitting",3\n',
    )
    assert read_prompts_csv(csv_path) == {"cat.png": "a cat, sitting", "sub/dog.png": "a dog"}


def test_column_aliases_case_and_bom(tmp_path: Path) -> None:
    csv_path = write(tmp_path / "p.csv", " FileName ,Prompt\nx.png,un café\n", encoding="utf-8-sig")
    assert read_prompts_csv(csv_path) == {"x.png": "un café"}


@pytest.mark.parametrize(
    ("text", "pattern"),
    [
        ("", "empty"),
        (
            "name,prompt\na.png,x\n",
            r"missing column image or file or filename or path; found columns: name, prompt",
        ),
        ("image,caption\na.png,x\n", "missing column prompt"),
        ("image,prompt\n", "no rows"),
        ("image,prompt\na.png,\n", r"line 2: empty prompt for 'a.png'"),
        ("image,prompt\n,x\n", "line 2: empty 'image' cell"),
        ("image,prompt\na.png\n", "line 2: expected at least 2 fields"),
        (
            "image,prompt\na.png,x\nb.png,y\na.png,z\n",
            r"line 4: 'a.png' already has a different prompt \(line 2\)",
        ),
    ],
)
def test_bad_csv_is_a_user_error(tmp_path: Path, text: str, pattern: str) -> None:
    csv_path = write(tmp_path / "p.csv", text)
    with pytest.raises(UserError, match=pattern):
        read_prompts_csv(csv_path)


def test_unreadable_csv(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="not found"):
        read_prompts_csv(tmp_path / "missing.csv")
    bad = tmp_path / "latin1.csv"
    bad.write_bytes("image,prompt\na.png,caf\xe9\n".encode("latin-1"))
    with pytest.raises(UserError, match="UTF-8"):
        read_prompts_csv(bad)


def test_prompt_index_matching_rules(tmp_path: Path) -> None:
    index = PromptIndex(
        {
            "cat.png": "any cat",
            "b/cat.png": "the cat in b",
            "dog": "a dog by stem",
            str(tmp_path / "abs" / "owl.png"): "absolute owl",
            "./rel/bird.png": "bird",
        }
    )
    assert index.get(tmp_path / "a" / "cat.png") == "any cat"
    assert index.get(tmp_path / "b" / "cat.png") == "the cat in b"  # longer match wins
    assert index.get(tmp_path / "x" / "dog.jpg") == "a dog by stem"
    assert index.get(tmp_path / "abs" / "owl.png") == "absolute owl"
    assert index.get(tmp_path / "elsewhere" / "owl.png") is None
    assert index.get(tmp_path / "rel" / "bird.png") == "bird"
    assert index.get(tmp_path / "Cat.png") is None  # case-sensitive
    assert index.get(tmp_path / "cat.jpg") is None  # "cat.png" is not a stem key
