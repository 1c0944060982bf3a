"""Prompt parsers (kind ``parser``) and the parser-independent phrase logic.

Importing this package imports no NLP library: spaCy, NLTK and stanza load on first ``parse``.
"""

from grefine_kit.parsers.base import Parser
from grefine_kit.parsers.nltk_parser import NltkParser
from grefine_kit.parsers.rule_parser import RuleParser
from grefine_kit.parsers.spacy_parser import SpacyParser
from grefine_kit.parsers.stanza_parser import StanzaParser
from grefine_kit.parsers.tree import build_tree, extract_phrases, phrase_text

__all__ = [
    "NltkParser",
    "Parser",
    "RuleParser",
    "SpacyParser",
    "StanzaParser",
    "build_tree",
    "extract_phrases",
    "phrase_text",
]
