"""grefine-pyiqa: pyiqa's no-reference IQA metrics as grefine_kit metrics (``pyiqa:<name>``).

pyiqa is licensed for non-commercial use only (PolyForm Noncommercial 1.0.0); this plugin is a
separate package so that grefine_kit itself never imports it. Registering the metrics imports
nothing heavy: the names, directions and ranges come from ``_table`` (pyiqa 0.1.16's).
"""

from __future__ import annotations

import functools
from typing import Any

from grefine_kit import hookimpl
from grefine_pyiqa._table import NEEDS_PROMPT, NR_METRICS, parse_range
from grefine_pyiqa.metric import LICENCE, PyiqaMetric

__all__ = ["LICENCE", "PyiqaMetric"]
__version__ = "0.1.0"


@hookimpl
def register_metrics(register: Any) -> None:
    for name, (lower_better, score_range, arch) in NR_METRICS.items():
        register(
            f"pyiqa:{name}",
            functools.partial(PyiqaMetric, metric=name),
            summary=f"pyiqa {arch} (range {score_range}; non-commercial licence)",
            lower_better=lower_better,
            score_range=parse_range(score_range),
            needs_prompt=name in NEEDS_PROMPT,
            licence=LICENCE,
        )
