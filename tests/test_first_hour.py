"""First-hour frictions (issue 20, items 15-19): install hints, warnings, messages, columns."""

from __future__ import annotations

import pytest


def test_random_open_clip_weights_log_no_random_init_warning(caplog: pytest.LogCaptureFixture) -> None:
    """open_clip's "No pretrained weights loaded" warning is noise when random weights were
    asked for by name (issue 20, item 17: the pq-map docs example, tiny with ViT-B-32)."""
    import logging

    from grefine_kit.models.loading import _random_open_clip

    with caplog.at_level(logging.WARNING):
        _random_open_clip("ViT-B-32", "random")
    assert not [r for r in caplog.records if "No pretrained weights" in r.getMessage()]


def test_an_unknown_first_party_part_names_how_to_install_its_plugin() -> None:
    """`--engine ray` without the plugin said only "known: local" (item 15); the plugins are
    not on PyPI, so the fix line names the checkout install."""
    from grefine_kit.errors import UnknownPartError
    from grefine_kit.parts.registry import Registry

    registry = Registry.from_plugins(entry_points=False)  # the core alone
    with pytest.raises(UnknownPartError) as caught:
        registry.get("engine", "ray")
    first, fix = str(caught.value).split("\n")
    assert first == "unknown engine 'ray'; known: local"
    assert fix.startswith(
        "fix: engine 'ray' comes from the grefine-ray plugin: pip install ./plugins/grefine-ray"
    )
    assert "not on PyPI" in fix
    with pytest.raises(UnknownPartError, match=r"pip install ./plugins/grefine-pyiqa"):
        registry.get("metric", "pyiqa:clipiqa+_vitL14_512")
    with pytest.raises(UnknownPartError, match=r"pip install ./plugins/grefine-paq2piq"):
        registry.get("recipe", "paq2piq-refine")
    with pytest.raises(UnknownPartError) as other:
        registry.get("engine", "dask")
    assert "\n" not in str(other.value)  # no plugin of ours provides it: no made-up hint


def test_help_and_the_local_engine_never_suggest_a_pypi_install() -> None:
    from click.testing import CliRunner

    from grefine_kit.cli import cli
    from grefine_kit.engines.local import LocalEngine
    from grefine_kit.errors import UserError

    text = CliRunner().invoke(cli, ["refine", "--help"]).output
    assert "pip install grefine-ray" not in text and "./plugins/grefine-ray" in " ".join(text.split())
    with pytest.raises(UserError, match=r"pip install ./plugins/grefine-ray \(in a checkout"):
        LocalEngine(workers=2)


def test_list_columns_fit_long_names() -> None:
    from click.testing import CliRunner

    from grefine_kit.cli import cli

    out = CliRunner().invoke(cli, ["list", "metric"]).output.splitlines()
    rows = [line for line in out if line.startswith("metric")]
    # the distribution column starts at the same place on every row, whatever the name length
    starts = {line.index(" grefine-") for line in rows if " grefine-" in line}
    assert len(starts) == 1, rows


def test_a_small_pixel_limit_is_said_in_pixels(tmp_path, monkeypatch) -> None:
    import numpy as np
    from PIL import Image

    from grefine_kit.errors import ImageError
    from grefine_kit.images.loading import load_image

    path = tmp_path / "a.png"
    Image.fromarray(np.zeros((40, 50, 3), np.uint8)).save(path)
    monkeypatch.setenv("GREFINE_MAX_PIXELS", "1000")
    with pytest.raises(ImageError, match=r"50x40 = 2,000 pixels exceeds the 1,000 pixels limit"):
        load_image(path)


def test_a_fix_line_chains_only_commands(monkeypatch) -> None:
    """`--device cuda` without CUDA plus missing weights read "use --device cpu && grefine
    fetch-weights" (item 19): advice is no shell command."""
    from grefine_kit.readiness.preflight import DEVICE, PACKAGE, WEIGHTS, Missing, format_missing

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    found = [
        Missing("a CUDA device", "stage1", DEVICE, "use --device cpu"),
        Missing("CLIP weights ViT-B-16/openai", "pq-map", WEIGHTS),
    ]
    line2 = format_missing(found, fetch_command="grefine fetch-weights --recipe g-refine").splitlines()[1]
    assert line2.startswith("fix: use --device cpu; run grefine fetch-weights --recipe g-refine")
    assert "&&" not in line2
    two = [Missing("spaCy", "aq", PACKAGE, "pip install spacy"), *found[1:]]
    line2 = format_missing(two, fetch_command="grefine fetch-weights --recipe g-refine").splitlines()[1]
    assert line2.startswith("fix: pip install spacy && grefine fetch-weights --recipe g-refine")


@pytest.mark.parametrize(
    ("prompt", "phrases"),
    [
        # spaCy (en_core_web_sm 3.8) gives these phrases; the rules parser said "photo holding"
        ("a photo of an astronaut holding a sign", ["photo", "astronaut holding", "sign"]),
        ("a painting of a woman wearing a hat", ["painting", "woman wearing", "hat"]),
        ("a group of people standing in a field", ["group", "people standing", "field"]),
        # not after "of": the verb still describes the subject, not the object of "in"
        ("a woman in a red dress holding an umbrella", ["woman holding", "red dress", "umbrella"]),
    ],
)
def test_rules_parser_attaches_a_verb_after_of_to_the_noun_it_describes(
    prompt: str, phrases: list[str]
) -> None:
    from grefine_kit.parsers.rule_parser import RuleParser
    from grefine_kit.parsers.tree import extract_phrases

    assert [p.text for p in extract_phrases(RuleParser().parse(prompt))] == phrases


def test_fetch_weights_for_random_clip_imports_no_torch() -> None:
    """`grefine fetch-weights --recipe tiny` took 12 s to say nothing is needed (item 19)."""
    from grefine_kit.testing.light import heavy_imports

    code = "from grefine_kit.cli import main\nmain(['fetch-weights', '--recipe', 'tiny'])"
    found, first = heavy_imports([("fetch", code)], env={"HF_HUB_OFFLINE": "1"})
    assert found["fetch"] == [], first
