"""Prompt formats shared by generative inference and training, and the ``[mention]{Group}`` markup.

Two formats, both writing the concept's *name* as the output:

``syncabel`` (decoder-only LMs; SynCABEL / GENRE-Llama)
    source  = context with the mention marked inline as ``[mention]{Group}``
    prompt  = ``source + "\\n" + surface + " is"``
    target  = ``" " + concept name`` followed by EOS.

``genbioel`` (seq2seq, BART/T5; GenBioEL)
    encoder = context with the mention marked as ``[ST] mention [ET]``
    decoder prompt = ``surface + " is"``, decoder target = ``" " + concept name`` + EOS.

The target always starts with a space, and the trie is built from exactly that string
(:meth:`PromptFormat.target`), so BPE tokenizers see the same token boundaries at training time,
at trie-build time and at decoding time: the prompt and target are tokenized separately and
their ids concatenated.

The context is a character window around the mention (``context_chars`` on each side, cut at
word boundaries; ``0`` = the mention alone, ``None`` = the whole document).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass

from genbel.data.queries import MentionQuery
from genbel.errors import Errors, InputError

MARKUP = re.compile(r"\[([^\[\]]+)\]\{([^{}]*)\}")


@dataclass
class PromptFormat:
    style: str = "syncabel"  # "syncabel" | "genbioel"
    context_chars: int | None = 200
    include_group: bool = True
    memory_size: int = 10

    def __post_init__(self) -> None:
        if self.style not in ("syncabel", "genbioel"):
            raise InputError(
                Errors.E022.format(value=self.style, field="prompt style", known="syncabel, genbioel")
            )

    # ------------------------------------------------------------------ pieces
    def context(self, q: MentionQuery) -> tuple[str, str, str]:
        """``(left, mention, right)`` around the mention, cut to the window."""
        if q.context is None or q.start is None or q.end is None:
            return "", q.surface, ""
        left, right = q.context[: q.start], q.context[q.end :]
        if self.context_chars is not None:
            n = self.context_chars
            if n <= 0:
                left, right = "", ""
            else:
                if len(left) > n:
                    left = left[-n:]
                    cut = left.find(" ")
                    left = left[cut + 1 :] if 0 <= cut < 40 else left
                if len(right) > n:
                    right = right[:n]
                    cut = right.rfind(" ")
                    right = right[:cut] if cut > n - 40 else right
        return left, q.context[q.start : q.end], right

    def source(self, q: MentionQuery) -> str:
        left, mention, right = self.context(q)
        if self.style == "syncabel":
            mark = f"[{mention}]"
            if self.include_group and q.type:
                mark += "{" + q.type + "}"
        else:
            mark = f"[ST] {mention} [ET]"
        return (left + mark + right).strip()

    def prefix(self, q: MentionQuery) -> str:
        """Decoder prompt ("mention is"); the linked text (long form when expanded)."""
        return f"{q.text} is"

    def prompt(self, q: MentionQuery, memory: Sequence[tuple[str, str]] = ()) -> str:
        """Full prompt for decoder-only models (with the document-level memory block, if any)."""
        return self.memory_block(memory) + self.source(q) + "\n" + self.prefix(q)

    def memory_block(self, memory: Sequence[tuple[str, str]]) -> str:
        """Earlier normalizations of the same document (LongBEL), one ``"mention is name"`` line each.

        The lines use the same "mention is name" form as the target, most recent last, at most
        ``memory_size`` distinct entries; empty memory gives an empty string (mention-level prompt).
        """
        if not memory or self.memory_size <= 0:
            return ""
        seen: dict[str, str] = {}
        for mention, name in memory:
            seen.pop(mention, None)
            seen[mention] = name
        items = list(seen.items())[-self.memory_size :]
        return "".join(f"{m} is {n}\n" for m, n in items) + "---\n"

    @staticmethod
    def target(name: str) -> str:
        return " " + name.strip()

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> PromptFormat:
        fields = ("style", "context_chars", "include_group", "memory_size")
        return cls(**{k: v for k, v in d.items() if k in fields})


def parse_markup(line: str, where: str = "<input>") -> MentionQuery:
    """Parse one ``text with [mention]{Group}`` line (exactly one marked mention) into a query.

    The ``{Group}`` part may be empty (``[mention]{}``) but not missing.
    """
    matches = list(MARKUP.finditer(line))
    if not matches:
        reason = "no [mention]{Group} span"
        if "[" in line and "]" in line and "{" not in line:
            reason = "the [mention] must be followed by {Group} (use {} for none)"
        raise InputError(Errors.E011.format(where=where, text=line, reason=reason))
    if len(matches) > 1:
        raise InputError(Errors.E011.format(where=where, text=line, reason="more than one marked mention"))
    m = matches[0]
    mention, group = m.group(1), m.group(2).strip()
    if not mention.strip():
        raise InputError(Errors.E011.format(where=where, text=line, reason="empty mention"))
    plain = line[: m.start()] + mention + line[m.end() :]
    start = m.start()
    return MentionQuery(
        text=mention, surface=mention, type=group or None, context=plain, start=start,
        end=start + len(mention),
    )
