"""A bundled English stopword list for phrase texts (no downloads).

Function words: articles, pronouns, auxiliaries, conjunctions, prepositions (also spatial ones
such as "near", "behind": a phrase is compared with its own noun, and the relation word would
only lower the phrase's score against the noun's) and clitics. Words that change what should
be drawn are deliberately *not* stopwords: numbers ("two"), colours, position nouns/adjectives
("top", "left"), and negations ("no", "not", "without"), since dropping a negation would invert
the phrase's meaning. Matching is case-insensitive; ``’`` counts as ``'``.
"""

from __future__ import annotations

__all__ = ["STOPWORDS", "is_stopword"]

_WORDS = """
a an the this that these those some any each every either neither such
i me my mine myself we us our ours ourselves you your yours yourself yourselves
he him his himself she her hers herself it its itself they them their theirs themselves
ones oneself who whom whose which what whatever whoever whichever
am is are was were be been being do does did doing done have has had having
will would shall should can could may might must
and or nor but yet so if then than because as while whereas although though
of to in on at by for with from into onto upon about via per over under near above below behind
beside besides between among amongst through across along around against inside outside within
toward towards beneath underneath atop off up down out like
also just very too quite rather really there here where when how why
's 're 'm 've 'll 'd
""".split()  # noqa: SIM905 (a word list reads better as text)

STOPWORDS: frozenset[str] = frozenset(_WORDS)


def is_stopword(word: str, stopwords: frozenset[str] = STOPWORDS) -> bool:
    """True when ``word`` (case-insensitive, ``’`` read as ``'``) is in ``stopwords``."""
    w = word.strip().lower().replace("\u2019", "'")
    return w in stopwords
