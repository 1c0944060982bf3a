"""How a run goes: :class:`RunOptions`, built once (by the CLI from its options, or by an API
caller) and handed down to :func:`grefine_kit.runner.run.run_job`. Nothing about a run is
read from ambient state (click's context, environment lookups at a distance).
"""

from __future__ import annotations

import attrs

from grefine_kit.engines.base import Engine
from grefine_kit.runs.shards import Shard

__all__ = ["RunOptions"]


@attrs.frozen
class RunOptions:
    """The choices of one run, whatever it does (refine or score).

    Attributes:
        save_maps: write the quality maps (heatmap overlays, raw ``.npy`` maps; refine: and
            the mask) next to each output (CLI ``--maps``).
        resume: skip items whose last record is ``ok`` with a matching fingerprint and whose
            outputs exist (CLI: on unless ``--no-resume``); off, every item is redone and its
            record says ``redone: resume off (--no-resume)``.
        progress: a :class:`~grefine_kit.progress.RunProgress` mode (True: a bar on a terminal
            only; ``"auto"``, ``"text"``, ``"jsonl"``: also one line per item; False or
            ``"off"``: silent). CLI ``--log-format``.
        shard: do only the items whose id falls in this shard (None: all). Output names are
            chosen over all items first, so the shards' union is the unsharded run.
        engine: who runs the tasks (None: the local engine, in this process).
        batch_size: items per worker batch (None: the job's default: the recipe's
            ``refiner.batch_size`` for refine, 8 for score); outputs do not depend on it.
    """

    save_maps: bool = False
    resume: bool = True
    progress: bool | str = True
    shard: Shard | None = None
    engine: Engine | None = None
    batch_size: int | None = attrs.field(default=None)

    @batch_size.validator
    def _positive(self, _attribute: attrs.Attribute[int | None], value: int | None) -> None:
        from grefine_kit.errors import UserError

        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
            raise UserError(f"batch size must be a positive integer; got {value!r}")
