"""Planted-defect sets: clean photos with one local defect each, their references and regions
(``grefine make-defects``; see docs/benchmark.md)."""
