"""The prompt-parser protocol: text in, PromptTree out."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from grefine_kit.types import PromptTree


@runtime_checkable
class Parser(Protocol):
    """A prompt parser.

    Contract: construction is cheap (the NLP model loads on first ``parse``); ``parse``
    never raises on odd text (empty, punctuation only, emoji, very long): it returns a
    ``PromptTree``, possibly with no tokens. A missing library or model raises
    ``grefine_kit.errors.MissingDependencyError`` with an install hint.
    """

    def parse(self, prompt: str) -> PromptTree: ...
