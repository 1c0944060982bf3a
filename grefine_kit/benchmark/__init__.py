"""``grefine benchmark``: does a recipe help? Recipes x dataset x metrics, in the paper's layout.

- ``dataset``: images + prompts (a folder + prompts CSV, or a manifest ``id,image,prompt``);
- ``run``: refine with every recipe (resumable), score originals and outputs, ``scores.csv``;
- ``table``: means, best / second best, negative optimisations, win rates (plain data);
- ``render``: Markdown, HTML, JSON and a PNG chart.
"""

from grefine_kit.benchmark.dataset import Dataset, Item, load_dataset, read_manifest
from grefine_kit.benchmark.run import ORIGINAL, BenchmarkResult, ablation_variants, run_benchmark
from grefine_kit.benchmark.scoring import MetricSpec
from grefine_kit.benchmark.table import Summary, summarise

__all__ = [
    "ORIGINAL",
    "BenchmarkResult",
    "Dataset",
    "Item",
    "MetricSpec",
    "Summary",
    "ablation_variants",
    "load_dataset",
    "read_manifest",
    "run_benchmark",
    "summarise",
]
