"""Dependency-free rule-based parser (registry name ``rules``): a stdlib-only fallback for smoke runs
and minimal installs; less accurate than spaCy. docs/parsers.md lists the rules with examples.

- Sentences: ``nltk_parser.split_sentences`` (pure regex, imports no NLTK). Tokens (``tokenize``): words
  with inner hyphens/apostrophes, numbers, "Mr."-style titles and initialisms, a possessive ``'s``, and
  any other symbol (an emoji with its modifiers) alone, each with its character span.
- POS (``tag_words``): closed-class and small open-class lexicons (colours, sizes, materials, style
  words; common verbs); capitalised mid-sentence words PROPN; suffixes (-ly ADV, -ous/-ful/-ive/-al/
  -ic/-y... ADJ, -ing/-ed participles) resolved by context (VERB after a noun, pronoun or auxiliary
  or opening the sentence, ADJ before a noun, NOUN after a determiner); a suffix-guessed ADJ that
  modifies nothing is a NOUN ("the city"); other unknown words NOUN, leftover stopwords PART.
- Heads (``heads.find_heads``, shared with the ``nltk`` parser): chunk = det/poss/num*
  (adj|adv|num|noun)* noun, its last noun the head, earlier
  nouns ``compound``, adjectives ``amod``, numbers ``nummod``, determiners ``det``, possessive
  pronouns ``poss``; a pronoun is a chunk of its own. Root: the opening verb, else the first chunk
  head that is no prepositional object or possessor. A chunk head is the ``pobj`` of a preposition
  right before it, the ``poss`` of the next chunk in "X 's Y", the ``conj`` of the first conjunct
  after "and"/"or"/"," (the conjunction its ``cc``) -- except after the object of a preposition
  attached to a verb that already has an object, where it is that verb's next ``dobj`` (the
  conjunction the ``cc`` of the previous conjunct; spaCy's reading of Figure 5) --, the ``dobj`` of
  a verb before it, else a ``dep`` of the root. A verb is a ``conj`` of the previous verb after a
  conjunction, else the ``acl`` of the previous chunk head. A preposition is the ``prep`` of the
  previous noun or verb, or of the verb whose object that noun is (not "of"), as spaCy mostly does
  ("wearing glasses with a suit").
  Auxiliaries/"to" are ``aux`` of the next verb, adverbs ``advmod`` of the next adjective/verb, stray
  adjectives ``amod`` of the previous chunk head, punctuation ``punct`` of the root. Sentence roots
  are joined under the first (``parataxis``) by ``build_tree``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

import attrs

from grefine_kit.parsers.heads import POSSESSIVE_PRONOUNS, find_heads
from grefine_kit.parsers.nltk_parser import split_sentences
from grefine_kit.parsers.stopwords import STOPWORDS
from grefine_kit.parsers.tree import MAX_PARSE_CHARS, build_tree, is_punctuation
from grefine_kit.types import PromptTree, Token

__all__ = ["RuleParser", "tag_words", "tokenize"]

UPOS = frozenset(
    "ADJ ADP ADV AUX CCONJ DET INTJ NOUN NUM PART PRON PROPN PUNCT SCONJ SYM VERB X".split()  # noqa: SIM905
)


# word -> first-pass tag. POSS: possessive pronouns (UPOS PRON); VB/VBZ/VBN: verb base form, 3rd person
# singular and participle, resolved by context in ``tag_words``
_LEXICON_TEXT = {
    "DET": "a an the this that these those some any each every either neither no all both another",
    "POSS": " ".join(sorted(POSSESSIVE_PRONOUNS)),
    "PRON": "i me we us you he him she it they them myself yourself himself herself itself ourselves who "
    "themselves whom what which something someone anything everything nothing everyone mine yours hers",
    "ADP": "of to in on at by for with without from into onto upon about via per over under near above "
    "below behind beside besides between among amongst through across along around against inside outside "
    "within toward towards beneath underneath atop off up down out like during after before beyond amid",
    "CCONJ": "and or nor but yet &",
    "SCONJ": "if because while although though whereas than as when where unless since",
    "AUX": "am is are was were be been being do does did have has had will would shall should can could "
    "may might must 're 'm 've 'll 'd",
    "PART": "not n't 's",
    "ADV": "very too quite rather really also just there here so always often almost nearly well even "
    "still again away together apart now then only extremely",
    "NUM": "zero one two three four five six seven eight nine ten eleven twelve twenty thirty hundred "
    "thousand million dozen",
    "PROPN": "mr mrs ms dr prof st sir jr sr",
    # colours, sizes, materials, style words, and -ly adjectives the suffix rule would call adverbs
    "ADJ": "red orange yellow green blue purple violet pink brown black white gray grey golden silver "
    "beige cyan magenta teal turquoise navy maroon crimson scarlet ivory dark light bright pale pastel neon "
    "colorful colourful big small large tiny huge giant little tall short long wide narrow thick thin fat "
    "slim massive miniature wooden woolen woollen metallic plastic furry fluffy old new young ancient "
    "modern vintage retro futuristic realistic photorealistic cinematic detailed beautiful cute pretty ugly "
    "happy sad angry funny scary cozy cosy epic elegant surreal abstract minimalist simple clean soft hard "
    "smooth rough shiny wet dry hot cold warm cool sharp blurry high low deep flat round empty full heavy "
    "fresh rich poor clear quiet loud strong weak fine good bad great best nice lovely friendly lonely "
    "curly silly elderly cuddly sparkly wrinkly smelly chilly hilly jolly oily woolly wooly lively deadly "
    "costly early daily",
    # nouns that the suffix rules would mistake for adverbs or participles
    "NOUN": "family butterfly lily jelly belly bully dragonfly firefly ally rally assembly supply thing "
    "king ring string wing spring swing ceiling morning evening clothing sibling pudding wedding earring "
    "ending building painting drawing speed steed breed tweed",
    # participles and past forms that do not end in -ed
    "VBN": "sat stood held worn wore rode ridden ate eaten slept sang sung threw thrown caught flew flown "
    "ran wrote written hung grew grown shone fought made taken took given gave seen shown built drew drawn "
    "drove driven lit broken fallen",
}
_LEXICON = {word: tag for tag, words in _LEXICON_TEXT.items() for word in words.split()}
_VERBS = (  # noqa: SIM905 (a word list reads better as text)
    "sit stand hold wear ride eat drink sleep lie smile sing carry throw catch chase climb swim jump run "
    "walk read write look watch wait float hang lean hug kiss grow shine glow fight cook dance paint draw "
    "build cross reach drive push pull touch fill surround overlook make take give see show bite lick "
    "roar bark stare gaze laugh cry sail wander explore pose play fly"
).split()


def _third_person(verb: str) -> str:
    if verb.endswith(("s", "sh", "ch", "x", "z", "o")):
        return verb + "es"
    if verb.endswith("y") and verb[-2:-1] not in ("a", "e", "o", "u"):
        return verb[:-1] + "ies"
    return verb + "s"


_LEXICON.update({v: "VB" for v in _VERBS} | {_third_person(v): "VBZ" for v in _VERBS})
_ADJ_SUFFIXES = ("ous", "ful", "ive", "al", "ic", "ish", "less", "able", "ible", "y")
_NOUNISH = frozenset({"NOUN", "PROPN", "ADJ", "ADJ?", "NUM"})
_PRE = frozenset({"DET", "POSS", "NUM"})

_WORD = r"[\w\u0300-\u036f]+"
_TOKEN_RE = re.compile(
    r"(?:[^\W\d_]\.){2,}"  # initialisms: e.g. U.S.
    r"|(?i:mrs|mr|ms|dr|prof|st|jr|sr|vs|etc)\.(?!\w)"  # title abbreviations keep their period
    r"|\d+(?:[.,:]\d+)+"  # 3.5, 1,000, 10:30
    r"|['\u2019]s(?!\w)"  # possessive / clitic 's
    rf"|{_WORD}(?:(?:['\u2019](?!s(?!\w))|[-\u2010\u2011]){_WORD})*"  # words, hyphenated words, don't
    r"|\S(?:\u200d\S|[\ufe0e\ufe0f\u20e3\U0001f3fb-\U0001f3ff])*"  # any other symbol, emoji + modifiers
)


def tokenize(text: str, start: int = 0, end: int | None = None) -> list[tuple[int, int]]:
    """Token ``(start, end)`` spans of ``text[start:end]``, as offsets into ``text``; never empty spans."""
    return [m.span() for m in _TOKEN_RE.finditer(text, start, len(text) if end is None else end)]


def _lookup(word: str, initial: bool, lexicon: Mapping[str, str]) -> str:
    """First-pass tag; ``VB``/``VBZ``/``VBN``/``ADJ?`` are resolved by context in ``tag_words``."""
    lw = word.lower().replace("\u2019", "'")
    key = lw.rstrip(".") if lw.endswith(".") and len(lw) > 1 else lw
    if lw in lexicon:
        return lexicon[lw]
    if key in _LEXICON:
        return _LEXICON[key]
    if not any(c.isalnum() for c in word):
        return "PUNCT" if is_punctuation(word) else "SYM"
    if re.fullmatch(r"[\d.,:]+", lw):
        return "NUM"
    if lw.endswith("n't"):
        return "AUX"
    if word[:1].isupper() and not initial:
        return "PROPN"
    if len(lw) > 4 and lw.endswith("ly"):
        return "ADV"
    if len(lw) > 4 and lw.endswith(("ing", "ed")):
        return "VBN"
    if len(lw) > 4 and lw.endswith(_ADJ_SUFFIXES) and not lw.endswith(("ay", "ey", "oy", "uy")):
        return "ADJ?"
    return "PART" if lw in STOPWORDS else "NOUN"


def tag_words(words: list[str], lexicon: Mapping[str, str] | None = None) -> list[str]:
    """Universal POS tags for one sentence's words (rules in the module docstring)."""
    first = next((i for i, w in enumerate(words) if any(c.isalnum() for c in w)), 0)
    tags = [_lookup(w, i <= first, lexicon or {}) for i, w in enumerate(words)]
    for i, t in enumerate(tags):
        prev = tags[i - 1] if i > 0 else None
        nxt = tags[i + 1] if i + 1 < len(tags) else None
        low = words[i].lower()
        if t == "POSS":
            tags[i] = "PRON"
        elif t == "ADP" and low == "to" and nxt in ("VB", "VBZ"):
            tags[i] = "PART"
        elif t == "VBN":  # participle
            if prev in ("NOUN", "PROPN", "PRON", "AUX", "VERB", "PART") or i <= first:
                tags[i] = "VERB"
            elif prev == "ADV" or nxt in _NOUNISH:
                tags[i] = "ADJ"
            elif prev in ("DET", "POSS", "NUM", "ADJ"):
                tags[i] = "NOUN"
            else:
                tags[i] = "VERB"
        elif t == "VB":  # base form: a verb after a pronoun, auxiliary, "to", plural noun; or imperative
            plural = prev == "NOUN" and re.search(r"[^s]s$", words[i - 1].lower()) is not None
            imperative = i <= first and nxt in ("DET", "POSS", "PRON")
            tags[i] = "VERB" if prev in ("PRON", "AUX", "PART") or plural or imperative else "NOUN"
        elif t == "VBZ":  # "sits": a verb after a singular noun or a pronoun
            subj = prev == "PRON" or (prev in ("NOUN", "PROPN") and not words[i - 1].lower().endswith("s"))
            tags[i] = "VERB" if subj else "NOUN"
        elif t == "ADJ" and prev in _PRE | {"ADJ"} and nxt not in _NOUNISH | {"VB", "VBN"}:
            tags[i] = "NOUN"  # "a green light shines": a listed adjective that modifies nothing
        elif t == "ADJ?":  # a suffix-guessed adjective that modifies nothing is a noun ("the city")
            coordinated = prev in ("CCONJ", "PUNCT") and i > 1 and tags[i - 2] == "ADJ"  # "cute and furry"
            keep = nxt in _NOUNISH or prev in ("AUX", "VERB", "ADV", "PART") or coordinated
            tags[i] = "ADJ" if keep else "NOUN"
    return tags


def _lower_keys(value: Mapping[str, str]) -> dict[str, str]:
    return {str(k).lower(): v for k, v in dict(value).items()}


def _check_lexicon(
    _inst: object, _attr: attrs.Attribute[Mapping[str, str]], value: Mapping[str, str]
) -> None:
    for word, tag in value.items():
        if not isinstance(word, str) or tag not in UPOS:
            raise ValueError(f"lexicon entries map a word to a Universal POS tag; got {word!r} -> {tag!r}")


@attrs.frozen
class RuleParser:
    """Parse prompts with stdlib-only rules: regex tokens, lexicon + suffix POS, chunk head rules.

    Options:
        lexicon: extra ``word -> UPOS`` entries (lower-case words, e.g. ``{"stripe": "ADJ"}``)
            consulted before the built-in lexicons.
    """

    lexicon: Mapping[str, str] = attrs.field(factory=dict, converter=_lower_keys, validator=_check_lexicon)

    def parse(self, prompt: str) -> PromptTree:
        """Parse ``prompt``; never raises on odd text (see ``Parser``)."""
        text = str(prompt)
        body = text[:MAX_PARSE_CHARS]
        raw: list[Token] = []
        for s0, s1 in split_sentences(body):
            spans = tokenize(body, s0, s1)
            if not spans:
                continue
            words = [body[a:b] for a, b in spans]
            tags = tag_words(words, self.lexicon)
            offset = len(raw)
            for (a, b), tag, (head, dep) in zip(spans, tags, find_heads(words, tags), strict=True):
                head = head + offset if head != -1 else -1
                raw.append(Token(body[a:b], a, b, tag, head, dep, lemma=body[a:b].lower()))
        return build_tree(text, raw, parser="rules")
