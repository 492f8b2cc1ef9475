"""Abbreviation detection (Schwartz & Hearst 2003, "A simple algorithm for identifying abbreviation
definitions in biomedical text").

Two candidate patterns are considered around every parenthesis that follows a space:

* ``long form (SF)`` — the usual case: the short form is inside the parentheses;
* ``SF (long form)`` — used when the parenthesised text has more than two words or is longer than
  the text before it; the short form is then the word just before the parenthesis and must contain a
  capital letter.

Inside the parentheses, text after ``", "`` or ``"; "`` is ignored (``(APC; MIM 175100)``).
A short form has 2–10 characters, at most two words, at least one letter and starts with a letter
or digit. The long form is found by matching the short form's letters and digits *backwards* in the
words before it (within the sentence, and not reaching back into an earlier parenthesised group),
each character anywhere in a word except the first short-form character, which must match the first
character of a word. The long form is rejected when it is shorter than the
short form, contains the short form as a word, ends with it, or has more than
``min(n + 5, 2 * n)`` words (``n`` = letters and digits in the short form; hyphens separate words).

Two refinements, as in Ab3P (the detector BioSyn and SapBERT use): when the word initials of a longer
run of words spell the short form, that run is the long form (``attenuated adenomatous polyposis coli
(AAPC)``, where the character match stops at ``adenomatous``); and a long form that contains another
short form of the same document gets it written out (``isolated DMS (IDMS)`` → ``isolated diffuse
mesangial sclerosis``).

A long form is usually written out once, at the definition, and the short form is used afterwards.
:func:`find_abbreviations` therefore returns one document-level dictionary (short form → long form)
that a linker applies to *every* occurrence of the short form in the document.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass

logger = logging.getLogger(__name__)

__all__ = [
    "AbbreviationPair", "expand_abbreviations", "find_abbreviation_pairs", "find_abbreviations",
    "initials_long_form",
]

MIN_SHORT_FORM_CHARS = 2
MAX_SHORT_FORM_CHARS = 10

# A sentence (or line) boundary: the long form never reaches back across it.
_BOUNDARY = re.compile(r"(?:[.!?](?=\s)|\n)")
_WORD_SPLIT = re.compile(r"[\s\-]+")
_BRACKETS = re.compile(r"[()\[\]{}]")
_PAREN_GROUP = re.compile(r"(?:(?<=\s)|^)\([^()]*\)")


@dataclass(frozen=True)
class AbbreviationPair:
    """One definition found in a text, with character offsets of both forms."""

    short: str
    long: str
    short_start: int
    short_end: int
    long_start: int
    long_end: int


def _alnum_count(s: str) -> int:
    return sum(1 for c in s if c.isalnum())


def _max_long_form_words(short: str) -> int:
    n = _alnum_count(short)
    return min(n + 5, n * 2)


def _is_valid_short_form(sf: str) -> bool:
    return (
        MIN_SHORT_FORM_CHARS <= len(sf) <= MAX_SHORT_FORM_CHARS
        and any(c.isalpha() for c in sf)
        and sf[0].isalnum()
        and len(sf.split()) <= 2
    )


def best_long_form(short: str, long: str) -> str | None:
    """Return the shortest suffix of ``long`` that the characters of ``short`` match, or ``None``.

    This is Schwartz & Hearst's ``findBestLongForm``: short-form characters are matched from the
    last to the first, right to left in the long form; the first short-form character must match
    at the start of a word.
    """
    s_idx = len(short) - 1
    l_idx = len(long) - 1
    while s_idx >= 0:
        c = short[s_idx].lower()
        if not c.isalnum():
            s_idx -= 1
            continue
        while (l_idx >= 0 and long[l_idx].lower() != c) or (
            s_idx == 0 and l_idx > 0 and long[l_idx - 1].isalnum()
        ):
            l_idx -= 1
        if l_idx < 0:
            return None
        l_idx -= 1
        s_idx -= 1
    start = long.rfind(" ", 0, l_idx + 1) + 1
    return long[start:]


def initials_long_form(short: str, long: str) -> str | None:
    """The shortest run of whole words at the end of ``long`` whose initials spell ``short``, or ``None``.

    Words are separated by spaces and hyphens (``non-Hodgkin lymphoma`` has the initials ``nhl``);
    the run starts at a space. Schwartz & Hearst match characters anywhere in a word, so for
    ``attenuated adenomatous polyposis coli (AAPC)`` they stop at ``adenomatous`` (its inner ``a``
    matches the second ``A``); the initials recover the full long form, as Ab3P does.
    """
    letters = [c.lower() for c in short if c.isalnum()]
    if not letters or not all(c.isalpha() for c in letters):
        return None
    tokens = list(re.finditer(r"\S+", long))
    initials: list[str] = []
    for m in reversed(tokens):
        parts = [w for w in _WORD_SPLIT.split(m.group()) if w]
        initials[:0] = [w[0].lower() for w in parts]
        if len(initials) > len(letters):
            return None
        if initials == letters:
            return long[m.start():]
    return None


def expand_abbreviations(text: str, abbrevs: dict[str, str], skip: str | None = None) -> str:
    """``text`` with every whole-word occurrence of a short form of ``abbrevs`` replaced by its long
    form, once (long forms are not expanded again); ``skip`` is a short form left as it is.

    A whole mention that is a short form becomes its long form; a mention that only contains one
    gets it written out in place, as Ab3P-based preprocessing does (``sporadic T-PLL`` →
    ``sporadic T-cell prolymphocytic leukaemia``); a definition inside the text loses its
    parenthesised short form (``von Hippel-Lindau (VHL) tumor`` → ``von Hippel-Lindau tumor``).
    Short forms with brackets are left alone.

    >>> expand_abbreviations("isolated DMS", {"DMS": "diffuse mesangial sclerosis"})
    'isolated diffuse mesangial sclerosis'
    """
    if text in abbrevs and text != skip:
        return abbrevs[text]
    shorts = [
        s for s in abbrevs
        if s != skip and s in text and not _BRACKETS.search(s + abbrevs[s])
    ]
    if not shorts:
        return text
    # a definition inside the text (``von Hippel-Lindau (VHL) tumor``): the long form is already
    # written, so the parenthesised short form is dropped rather than written out a second time
    for s in shorts:
        if abbrevs[s].lower() in text.lower():
            text = re.sub(rf"\s*\(\s*{re.escape(s)}\s*\)", "", text)
    shorts = [s for s in shorts if s in text]
    if not shorts:
        return text
    # longest first, so that ``DMS`` does not cut into ``IDMS``; one pass, so no re-expansion
    pattern = "|".join(re.escape(s) for s in sorted(shorts, key=len, reverse=True))
    return re.sub(rf"(?<![\w-])(?:{pattern})(?![\w-])", lambda m: abbrevs[m.group(0)], text)


def _expand_nested(abbrevs: dict[str, str]) -> dict[str, str]:
    """Long forms that contain another short form of the same document get it written out once
    (``isolated DMS (IDMS)`` with ``diffuse mesangial sclerosis (DMS)`` → ``isolated diffuse
    mesangial sclerosis``)."""
    return {short: expand_abbreviations(long, abbrevs, skip=short) for short, long in abbrevs.items()}


def _acceptable(short: str, long: str) -> bool:
    n = _alnum_count(short)
    words = [w for w in _WORD_SPLIT.split(long) if w]
    return not (
        len(long) < len(short)
        or f"{short} " in long
        or long.endswith(short)
        or len(words) > _max_long_form_words(short)
        or n > MAX_SHORT_FORM_CHARS
    )


def _matching_paren(text: str, open_idx: int) -> int:
    """Index of the ``)`` closing the ``(`` at ``open_idx`` (nesting aware), or -1."""
    depth = 0
    for j in range(open_idx, len(text)):
        ch = text[j]
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
            if depth == 0:
                return j
        elif ch == "\n":
            return -1
    return -1


def _sentence_start(text: str, before: int) -> int:
    start = 0
    for m in _BOUNDARY.finditer(text, 0, before):
        start = m.end()
    return start


def _window_start(text: str, sent_start: int, end: int, max_words: int) -> int:
    """Start of the last ``max_words`` words before ``end``, not before ``sent_start``."""
    spans = [m.start() for m in re.finditer(r"\S+", text[sent_start:end])]
    if not spans:
        return end
    return sent_start + spans[max(0, len(spans) - max_words)]


def find_abbreviation_pairs(text: str) -> list[AbbreviationPair]:
    """All abbreviation definitions in ``text``, in text order."""
    pairs: list[AbbreviationPair] = []
    for m in re.finditer(r"(?<=\s)\(", text):
        open_idx = m.start()
        close_idx = _matching_paren(text, open_idx)
        if close_idx < 0:
            continue
        inner_start = open_idx + 1
        inner = text[inner_start:close_idx]
        cut = min((i for i in (inner.find(", "), inner.find("; ")) if i >= 0), default=-1)
        if cut >= 0:
            inner = inner[:cut]
        sent_start = _sentence_start(text, open_idx)
        before = text[sent_start:open_idx].rstrip()
        stripped = inner.strip()
        if not stripped or not before:
            continue
        if len(stripped.split()) > 2 or len(stripped) > len(before):
            pair = _short_before_paren(text, sent_start, open_idx, inner_start, inner)
        else:
            pair = _short_in_paren(text, sent_start, open_idx, inner_start, inner)
        if pair is not None:
            pairs.append(pair)
    return pairs


def _short_in_paren(
    text: str, sent_start: int, open_idx: int, inner_start: int, inner: str
) -> AbbreviationPair | None:
    short = inner.strip()
    if not _is_valid_short_form(short):
        return None
    lf_end = len(text[:open_idx].rstrip())
    # the long form never reaches back into an earlier parenthesised group ("type 1 (DM1) and type 2 (DM2)")
    for g in _PAREN_GROUP.finditer(text, sent_start, lf_end):
        sent_start = g.end()
    win_start = _window_start(text, sent_start, lf_end, _max_long_form_words(short))
    candidate = text[win_start:lf_end]
    long = best_long_form(short, candidate)
    if long is None:
        return None
    long = long.strip()
    initials = initials_long_form(short, candidate)
    if initials is not None and len(initials) > len(long) and _acceptable(short, initials):
        long = initials
    if not long or not _acceptable(short, long):
        return None
    s_start = inner_start + (len(inner) - len(inner.lstrip()))
    return AbbreviationPair(short, long, s_start, s_start + len(short), lf_end - len(long), lf_end)


def _short_before_paren(
    text: str, sent_start: int, open_idx: int, inner_start: int, inner: str
) -> AbbreviationPair | None:
    head = text[sent_start:open_idx].rstrip()
    word_start = head.rfind(" ") + 1
    raw = head[word_start:]
    short = raw.strip("\"'“”‘’[")
    if not short or not any(c.isupper() for c in short) or not _is_valid_short_form(short):
        return None
    candidate = inner.strip()
    long = best_long_form(short, candidate)
    if long is None:
        return None
    long = long.strip()
    if not long or not _acceptable(short, long):
        return None
    s_start = sent_start + word_start + raw.index(short)
    l_start = inner_start + (len(inner) - len(inner.lstrip())) + (len(candidate) - len(long))
    return AbbreviationPair(short, long, s_start, s_start + len(short), l_start, l_start + len(long))


def find_abbreviations(text: str) -> dict[str, str]:
    """Short form → long form for every definition in a document.

    The long form is often written only once, at its definition; linkers use this dictionary to
    replace every occurrence of the short form in the same document. When a short form is defined
    more than once with different long forms, the most frequent long form wins, then the one with
    more words (``The ATM (A-T, mutated) gene`` … ``ataxia-telangiectasia (A-T)`` keeps
    ``ataxia-telangiectasia``), then the first.

    >>> find_abbreviations("Germline mutations in the adenomatous polyposis coli (APC) gene.")
    {'APC': 'adenomatous polyposis coli'}
    """
    found: dict[str, dict[str, tuple[int, int]]] = {}
    for i, p in enumerate(find_abbreviation_pairs(text)):
        longs = found.setdefault(p.short, {})
        count, first = longs.get(p.long, (0, i))
        longs[p.long] = (count + 1, first)
    out: dict[str, str] = {}
    for short, longs in found.items():
        best = max(
            longs, key=lambda lf: (longs[lf][0], len([w for w in _WORD_SPLIT.split(lf) if w]), -longs[lf][1])
        )
        if len(longs) > 1:
            logger.debug("abbreviation %r has several long forms %s; using %r", short, sorted(longs), best)
        out[short] = best
    return _expand_nested(out)
