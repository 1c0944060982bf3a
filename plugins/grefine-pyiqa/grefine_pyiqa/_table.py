"""pyiqa's no-reference metrics as of pyiqa 0.1.16: name -> (lower_better, score range, arch).

Registration reads this table so that ``grefine list`` never imports pyiqa (4-6 s, and a
non-commercial licence nobody should load by accident); ``PyiqaMetric`` reads the same facts
from the installed pyiqa when it is built, and the plugin's tests check the two agree.
The score ranges are pyiqa's own strings: ``~`` marks an approximate bound, an empty side is open.
Left out: FID, sFID, FID-DINOv2 and the Inception Score, which score a set of images, not one.
"""

from __future__ import annotations

#: metrics that need the prompt (pyiqa's ``caption_list`` argument)
NEEDS_PROMPT = frozenset({"clipscore"})
#: pyiqa's no-reference metrics that score a distribution of images, not an image
DATASET_LEVEL = frozenset({"fid", "fid_dinov2", "sfid", "inception_score"})

#: pyiqa name -> (lower_better, score_range as pyiqa writes it, pyiqa arch type)
NR_METRICS: dict[str, tuple[bool, str, str]] = {
    "afine_nr": (True, "-2, 2", "AFINE"),
    "arniqa": (False, "0, 1", "ARNIQA"),
    "arniqa-clive": (False, "0, 1", "ARNIQA"),
    "arniqa-csiq": (False, "0, 1", "ARNIQA"),
    "arniqa-flive": (False, "0, 1", "ARNIQA"),
    "arniqa-kadid": (False, "0, 1", "ARNIQA"),
    "arniqa-live": (False, "0, 1", "ARNIQA"),
    "arniqa-spaq": (False, "0, 1", "ARNIQA"),
    "arniqa-tid": (False, "0, 1", "ARNIQA"),
    "brisque": (True, "~0, ~150", "BRISQUE"),
    "brisque_matlab": (True, "~0, ~100", "BRISQUE"),
    "clipiqa": (False, "0, 1", "CLIPIQA"),
    "clipiqa+": (False, "0, 1", "CLIPIQA"),
    "clipiqa+_rn50_512": (False, "0, 1", "CLIPIQA"),
    "clipiqa+_vitL14_512": (False, "0, 1", "CLIPIQA"),
    "clipscore": (False, "0, 2.5", "CLIPScore"),
    "cnniqa": (False, "~0, ~1", "CNNIQA"),
    "compare2score": (False, "0, 100", "Compare2Score"),
    "dbcnn": (False, "~0, ~1", "DBCNN"),
    "entropy": (False, "0, 8", "Entropy"),
    "fgresq": (False, "0, 1", "FGResQ"),
    "hyperiqa": (False, "~0, ~1", "HyperNet"),
    "ilniqe": (True, "~0, ~100", "ILNIQE"),
    "laion_aes": (False, "~1, ~10", "LAIONAes"),
    "liqe": (False, "1, 5", "LIQE"),
    "liqe_mix": (False, "1, 5", "LIQE"),
    "maclip": (False, "0, 1", "MACLIP"),
    "maniqa": (False, "~0, ~1", "MANIQA"),
    "maniqa-kadid": (False, "~0, ~1", "MANIQA"),
    "maniqa-pipal": (False, "~0, ~1", "MANIQA"),
    "metaiqa": (False, "0, 1", "MetaIQA"),
    "musiq": (False, "~0, ~100", "MUSIQ"),
    "musiq-ava": (False, "1, 10", "MUSIQ"),
    "musiq-paq2piq": (False, "~0, ~100", "MUSIQ"),
    "musiq-spaq": (False, "~0, ~100", "MUSIQ"),
    "nima": (False, "0, 10", "NIMA"),
    "nima-koniq": (False, "~0, ~1", "NIMA"),
    "nima-spaq": (False, "~0, ~1", "NIMA"),
    "nima-vgg16-ava": (False, "0, 10", "NIMA"),
    "niqe": (True, "~0, ~100", "NIQE"),
    "niqe_matlab": (True, "~0, ~100", "NIQE"),
    "nrqm": (False, "~0, ~10", "NRQM"),
    "paq2piq": (False, "~0, ~100", "PAQ2PIQ"),
    "pi": (True, "~0, ~", "PI"),
    "piqe": (True, "0, 100", "PIQE"),
    "qalign": (False, "1, 5", "QAlign"),
    "qalign_4bit": (False, "1, 5", "QAlign"),
    "qalign_8bit": (False, "1, 5", "QAlign"),
    "qrealign": (False, "0, 1", "QReAlign"),
    "qrealign-lite": (False, "0, 1", "QReAlign"),
    "qrealign-mini": (False, "0, 1", "QReAlign"),
    "qrealign-pro": (False, "0, 1", "QReAlign"),
    "qualiclip": (False, "0, 1", "QualiCLIP"),
    "qualiclip+": (False, "0, 1", "QualiCLIP"),
    "qualiclip+-clive": (False, "0, 1", "QualiCLIP"),
    "qualiclip+-flive": (False, "0, 1", "QualiCLIP"),
    "qualiclip+-spaq": (False, "0, 1", "QualiCLIP"),
    "topiq_iaa": (False, "1, 10", "CFANet"),
    "topiq_iaa_res50": (False, "1, 10", "CFANet"),
    "topiq_nr": (False, "~0, ~1", "CFANet"),
    "topiq_nr-face": (False, "~0, ~1", "CFANet"),
    "topiq_nr-face-v1": (False, "~0, ~1", "CFANet"),
    "topiq_nr-flive": (False, "~0, ~1", "CFANet"),
    "topiq_nr-spaq": (False, "~0, ~1", "CFANet"),
    "topiq_nr_swin-face": (False, "~0, ~1", "CFANet"),
    "tres": (False, "~0, ~100", "TReS"),
    "tres-flive": (False, "~0, ~100", "TReS"),
    "unique": (False, "~-3, ~3", "UNIQUE"),
    "uranker": (False, "~-1, ~2", "URanker"),
    "wadiqam_nr": (False, "~-1, ~0.1", "WaDIQaM"),
}


def parse_range(text: str) -> tuple[float, float]:
    """pyiqa's ``"~0, ~100"`` -> ``(0.0, 100.0)``; an empty side (``"0, ~"``) is infinite."""
    lo_text, _, hi_text = text.partition(",")
    lo, hi = lo_text.strip().lstrip("~").strip(), hi_text.strip().lstrip("~").strip()
    return (float(lo) if lo else float("-inf"), float(hi) if hi else float("inf"))
