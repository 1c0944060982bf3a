"""Safe run folders shared by every runner (score, refine, evaluate, engines).

- :mod:`~grefine_kit.runs.inputs`: PATH arguments into image files, prompts CSVs into prompts;
  :mod:`~grefine_kit.runs.manifest`: ``--manifest`` files; :mod:`~grefine_kit.runs.shards`:
  ``--shard I/N``;
- :class:`~grefine_kit.runs.items.Item`: the unit of work (id, image, prompt, seed);
  :func:`~grefine_kit.runs.items.item_ids`: ids relative to the input root;
- :class:`~grefine_kit.runs.folder.RunFolder`: refuses inputs as outputs, locks, repairs and
  appends the record log, decides what is done (:meth:`~RunFolder.resume_state`);
- :mod:`~grefine_kit.runs.atomic`: temp file + rename writes; :mod:`~grefine_kit.runs.layout`:
  output names; :mod:`~grefine_kit.runs.fingerprint`; :mod:`~grefine_kit.runs.faults`: kill
  points for tests; :class:`~grefine_kit.runs.failures.FailureSummary`.
"""

from grefine_kit.runs.failures import FailureSummary
from grefine_kit.runs.fingerprint import config_hash, item_fingerprint, stale_reason
from grefine_kit.runs.folder import LOCK_NAME, LOG_NAME, RunFolder, check_not_inputs
from grefine_kit.runs.items import Item, display_path, input_root, item_ids, make_items, safe_text
from grefine_kit.runs.layout import OutputNames, output_stems

__all__ = [
    "LOCK_NAME",
    "LOG_NAME",
    "FailureSummary",
    "Item",
    "OutputNames",
    "RunFolder",
    "check_not_inputs",
    "config_hash",
    "display_path",
    "input_root",
    "item_fingerprint",
    "item_ids",
    "make_items",
    "output_stems",
    "safe_text",
    "stale_reason",
]
