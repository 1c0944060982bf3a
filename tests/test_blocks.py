"""Blocks, state, roles, options, capabilities and the seams around them (no models run)."""

from __future__ import annotations

import ast
import re
from pathlib import Path
from typing import Any

import attrs
import numpy as np
import pytest

from grefine_kit.combiners.g_refine import GRefineCombiner, PerceptualCombiner
from grefine_kit.devices import resolve_device, resolve_dtype, resolve_dtype_name
from grefine_kit.errors import RecipeError, UserError
from grefine_kit.indicators.aq_map import AQMap
from grefine_kit.models.loading import BackboneSpec
from grefine_kit.parts.base import PartBase, capabilities
from grefine_kit.parts.roles import INDICATOR_ROLES, ROLES, extra_stage_role, indicator_role, role
from grefine_kit.refiner.blocks import check_blocks, declared_io
from grefine_kit.refiner.options import MIGRATIONS, RefinerOptions, option_names
from grefine_kit.stages.diffusion import InpaintStage
from grefine_kit.types import QualityMap

PACKAGE = Path(__file__).parents[1] / "grefine_kit"
DOCS = Path(__file__).parents[1] / "docs"


def test_check_blocks_names_the_block_and_the_missing_entry() -> None:
    check_blocks([("a", ("image",), ("mask",)), ("b", ("mask",), ())])
    with pytest.raises(
        RecipeError, match=r"^block b reads 'regions', which no earlier block writes; add a \[regions\]"
    ):
        check_blocks([("a", ("image",), ("mask",)), ("b", ("regions",), ())])
    # order matters: a read written only later is still missing
    with pytest.raises(RecipeError, match="block b reads 'mask'"):
        check_blocks([("b", ("mask",), ()), ("a", ("image",), ("mask",))])


def test_declared_io_follows_the_parts_requirements() -> None:
    assert declared_io(role("combiner"), PerceptualCombiner) == (("maps.perceptual",), ("mask",))
    assert declared_io(role("combiner"), GRefineCombiner()) == ((), ("mask",))
    # the report entry is a declared capability of the part, not of the role
    assert declared_io(role("alignment"), object())[1] == ("maps.alignment",)
    assert declared_io(role("alignment"), AQMap)[1] == ("maps.alignment", "alignment_report")
    assert declared_io(indicator_role("extra"), AQMap)[1] == ("maps.extra", "alignment_report")
    assert declared_io(role("stage2"), InpaintStage) == (("image",), ("image",))
    assert declared_io(extra_stage_role("third"), InpaintStage(model="tiny")) == (
        ("image", "mask"),
        ("image",),
    )
    assert declared_io(role("stage1"), InpaintStage) == (("image", "mask"), ("image",))


def test_capabilities_come_from_the_base_class_not_from_attribute_probing() -> None:
    class Plain:  # follows no base: defaults, even though it has look-alike attributes
        requires = ("perceptual",)

        def fetch_weights(self) -> list[str]:
            return ["x"]

    class Declared(PartBase):
        requires = ("alignment",)

        def fetch_weights(self) -> list[str]:
            return ["y"]

    assert capabilities(Plain()) == capabilities(object()) == capabilities(PartBase())
    assert not capabilities(PartBase()).fetches_weights
    found = capabilities(Declared())
    assert found.requires == ("alignment",) and found.fetches_weights
    assert capabilities(InpaintStage(model="tiny")).fetches_weights


def test_refiner_options_map_one_to_one_onto_the_refiner_table() -> None:
    names = option_names()
    assert names == [f.name for f in attrs.fields(RefinerOptions)]
    opts = RefinerOptions.from_table({"iterations": 8, "delta": 0.25})
    assert RefinerOptions.from_table(opts.to_table()) == opts and opts.to_table() == {
        "iterations": 8,
        "delta": 0.25,
    }
    with pytest.raises(UserError, match=r"refiner.iteration: unknown option \(did you mean 'iterations'\?\)"):
        RefinerOptions.from_table({"iteration": 3})
    for old in MIGRATIONS:
        with pytest.raises(UserError, match=rf"refiner.{old}: .*\[regions\]"):
            RefinerOptions.from_table({old: 1})
    # docs/refiner.md documents every option in its table
    text = (DOCS / "refiner.md").read_text("utf-8")
    for name in names:
        assert re.search(rf"^\| `{name}` \|", text, re.M), f"docs/refiner.md does not document {name}"


def test_quality_map_details_cannot_be_changed_after_the_fact() -> None:
    source = {"a": 1}
    qmap = QualityMap(map=np.ones((2, 2), np.float32), score=0.5, details=source)
    with pytest.raises(TypeError):
        qmap.details["a"] = 2  # type: ignore[index]
    source["a"] = 3
    assert qmap.details["a"] == 1
    for mutate in (
        lambda d: d.update(a=2),
        lambda d: d.pop("a"),
        lambda d: d.clear(),
        lambda d: d.setdefault("b", 1),
    ):
        with pytest.raises(TypeError):
            mutate(qmap.details)
    # still picklable (results cross process boundaries) and JSON-able
    import json
    import pickle

    again = pickle.loads(pickle.dumps(qmap))
    assert dict(again.details) == {"a": 1} and json.loads(json.dumps(again.details)) == {"a": 1}
    with pytest.raises(TypeError):
        again.details["a"] = 2  # type: ignore[index]


def test_one_table_of_roles() -> None:
    assert INDICATOR_ROLES == ("perceptual", "alignment")
    assert [r.name for r in ROLES] == ["perceptual", "alignment", "combiner", "regions", "stage1", "stage2"]
    # the modules that used to spell the roles out now read them from the table
    spelled = {r.name for r in ROLES} | {r.table for r in ROLES}
    for module in ("recipes/recipe.py", "readiness/fetch.py", "api.py", "runner/refine.py"):
        tree = ast.parse((PACKAGE / module).read_text("utf-8"))
        found = {
            n.value
            for n in ast.walk(tree)
            if isinstance(n, ast.Constant) and isinstance(n.value, str) and n.value in spelled
        }
        assert not found, f"{module} spells out roles {sorted(found)}: use grefine_kit.parts.roles"


def test_runtime_code_never_imports_the_testing_package() -> None:
    offenders = []
    for path in PACKAGE.rglob("*.py"):
        if "testing" in path.relative_to(PACKAGE).parts:
            continue
        for node in ast.walk(ast.parse(path.read_text("utf-8"))):
            names: list[Any] = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            offenders += [f"{path.name}: {n}" for n in names if n.startswith("grefine_kit.testing")]
    assert not offenders


def test_auto_device_and_dtype_mean_the_same_for_indicators_and_stages() -> None:
    device = resolve_device("auto")
    spec = BackboneSpec(model="grefine-tiny", weights="random", device="auto", dtype="auto").resolved()
    assert spec.device == device and spec.dtype == resolve_dtype_name("auto", device)
    assert (
        resolve_dtype_name("auto", "cpu") == "float32" and resolve_dtype_name("auto", "cuda:1") == "float16"
    )
    assert str(resolve_dtype("auto", "mps")) == "torch.float16"
    with pytest.raises(UserError, match="dtype must be one of"):
        resolve_dtype_name("half", "cpu")


def test_a_part_that_breaks_its_contract_fails_with_the_blocks_name() -> None:
    from PIL import Image

    from grefine_kit.refiner.refiner import Refiner

    class NoMask:
        def combine(self, maps: Any, size: Any) -> Any:
            return np.zeros((size[1], size[0]))

    class Outside:
        def detect(self, mask: Any, maps: Any, report: Any) -> list[Any]:
            from grefine_kit.regions.base import Region

            return [
                Region(
                    box=(0, 0, 4, 4), crop=(0, 0, 20, 12), mask=_full_mask((20, 12)), area=1.0, source="mask"
                )
            ]

    image = Image.new("RGB", (16, 12))
    with pytest.raises(RuntimeError, match=r"combiner \(NoMask\) returned ndarray, not a Mask"):
        Refiner(combiner=NoMask()).refine(image, "p")
    full = type("Full", (GRefineCombiner,), {"combine": lambda self, maps, size: _full_mask(size)})
    with pytest.raises(
        RuntimeError, match=r"regions \(Outside\) returned a region crop \(0, 0, 20, 12\) outside"
    ):
        Refiner(combiner=full(), regions=Outside()).refine(image, "p")


def _full_mask(size: tuple[int, int]) -> Any:
    from grefine_kit.types import Mask

    ones = np.ones((size[1], size[0]), np.float32)
    return Mask(binary=ones, soft=ones)
