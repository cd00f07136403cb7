"""Language-aware word splitting for BM25 (no stemming, no stop words).

Why not ``\\w+`` alone: Chinese, Japanese and Thai write no spaces, so one ``\\w+`` run is a
whole sentence and never matches a query. Runs of those scripts become character unigrams plus
bigrams (the usual CJK n-gram indexing). Everything else (Latin, Cyrillic, Greek, Arabic,
Devanagari, Hangul, ...) is split into words of letters, digits and combining marks; the marks
matter because Python's ``\\w`` drops Devanagari vowel signs and viramas mid-word.
"""

from __future__ import annotations

import itertools
import unicodedata

import regex

# Scripts written without spaces between words (plus the Japanese long-vowel mark).
_NO_SPACE = r"\p{Han}\p{Hiragana}\p{Katakana}\p{Thai}\p{Lao}\p{Khmer}\p{Myanmar}\u30fc"
_TOKEN = regex.compile(
    rf"(?P<ngram>[{_NO_SPACE}]+)|(?P<word>[[\p{{L}}\p{{N}}\p{{M}}_]--[{_NO_SPACE}]]+)",
    flags=regex.VERSION1,
)
_GRAPHEME = regex.compile(r"\X")


def tokenize(text: str) -> list[str]:
    """Lower-cased words, and unigrams + bigrams for runs of unspaced scripts."""
    text = unicodedata.normalize("NFKC", text).lower()
    tokens: list[str] = []
    for match in _TOKEN.finditer(text):
        run = match.group("ngram")
        if run is None:
            tokens.append(match.group("word"))
            continue
        chars = _GRAPHEME.findall(run)  # a Thai tone mark stays on its consonant
        tokens.extend(chars)
        tokens.extend(a + b for a, b in itertools.pairwise(chars))
    return tokens


def tokenize_many(texts: list[str]) -> list[list[str]]:
    return [tokenize(t) for t in texts]
