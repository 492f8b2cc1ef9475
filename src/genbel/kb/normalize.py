"""Name normalisation used for exact lookup, de-duplication and sparse features."""

from __future__ import annotations

import re
import unicodedata

_PUNCT = re.compile(r"[^\w\s]", flags=re.UNICODE)
_SPACES = re.compile(r"\s+")


def normalize_name(name: str) -> str:
    """Lowercase, fold unicode compatibility forms, replace punctuation by spaces, squeeze spaces.

    ``"Breast-Cancer, familial"`` → ``"breast cancer familial"``.
    """
    s = unicodedata.normalize("NFKC", name).lower()
    s = s.replace("_", " ")
    s = _PUNCT.sub(" ", s)
    return _SPACES.sub(" ", s).strip()
