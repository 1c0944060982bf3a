"""Indicators as IQA: correlation of predicted scores with human opinion scores (MOS)."""

from grefine_kit.evaluation.correlation import krcc, plcc, srcc
from grefine_kit.evaluation.mos import MosRow, indicator_kind, read_mos_csv, read_mos_table
from grefine_kit.evaluation.run import Evaluation, evaluate

__all__ = [
    "Evaluation",
    "MosRow",
    "evaluate",
    "indicator_kind",
    "krcc",
    "plcc",
    "read_mos_csv",
    "read_mos_table",
    "srcc",
]
