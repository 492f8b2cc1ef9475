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

#: document-level memory layouts (:attr:`PromptFormat.memory_style`)
MEMORY_STYLES = ("block", "lines")

MARKUP = re.compile(r"\[([^\[\]]+)\]\{([^{}]*)\}")


@dataclass
class PromptFormat:
    style: str = "syncabel"  # "syncabel" | "genbioel"
    context_chars: int | None = 200
    include_group: bool = True
    memory_size: int = 10
    #: how document-level memory is laid out: ``"block"`` (LongBEL: the latest distinct entries, then
    #: ``---``, then the mention-level prompt) or ``"lines"`` (an append-only transcript, see
    #: :meth:`memory_entries`); saved formats without the field are ``"block"``
    memory_style: str = "block"

    def __post_init__(self) -> None:
        if self.style not in ("syncabel", "genbioel"):
            raise InputError(
                Errors.E022.format(value=self.style, field="prompt style", known="syncabel, genbioel")
            )
        if self.memory_style not in MEMORY_STYLES:
            raise InputError(
                Errors.E022.format(value=self.memory_style, field="memory style", known=", ".join(MEMORY_STYLES))
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
        """Full prompt for decoder-only models (with the document-level memory block, if any).

        ``"lines"`` memory with a mention-only context (``context_chars=0``) ends with the bare
        ``"mention is"`` line once there is memory: the prompt is then the previous prompt of the
        document plus the name chosen for it and the next mention, so each decode computes only those
        new tokens when the earlier ones' key/value states are reused.
        """
        block = self.memory_block(memory)
        if block and self.memory_style == "lines" and self.context_chars == 0:
            return block + self.prefix(q)
        return block + self.source(q) + "\n" + self.prefix(q)

    def memory_entries(self, memory: Sequence[tuple[str, str]]) -> list[tuple[str, str]]:
        """The ``(mention, name)`` entries a prompt shows, oldest first, at most ``memory_size``.

        ``"block"``: the latest distinct mentions, each with its latest name, ordered by their latest
        occurrence. ``"lines"``: each mention with its *first* name, in order of first occurrence
        (a repeat adds nothing); past ``memory_size`` entries the oldest are left out in chunks of
        ``max(1, memory_size // 2)``, so that the shown entries change only at chunk boundaries and
        the prompts in between extend one another.
        """
        size = self.memory_size
        if not memory or size <= 0:
            return []
        seen: dict[str, str] = {}
        if self.memory_style == "lines":
            for mention, name in memory:
                seen.setdefault(mention, name)
            items = list(seen.items())
            return items[self.chunk_start(len(items), size) :]
        for mention, name in memory:
            seen.pop(mention, None)
            seen[mention] = name
        return list(seen.items())[-size:]

    def chunk_start(self, n: int, most: int) -> int:
        """``"lines"``: index of the first of ``n`` entries shown when at most ``most`` fit (a multiple
        of the chunk ``max(1, memory_size // 2)``)."""
        if n <= most:
            return 0
        chunk = max(1, self.memory_size // 2)
        return min(n, -(-(n - most) // chunk) * chunk)

    def memory_block(self, memory: Sequence[tuple[str, str]]) -> str:
        """Earlier normalizations of the same document (LongBEL), one ``"mention is name"`` line each.

        The lines use the same "mention is name" form as the target, oldest first
        (:meth:`memory_entries`); ``"block"`` ends them with ``---``; empty memory gives an empty
        string (mention-level prompt).
        """
        items = self.memory_entries(memory)
        if not items:
            return ""
        lines = "".join(f"{m} is {n}\n" for m, n in items)
        return lines if self.memory_style == "lines" else lines + "---\n"

    @staticmethod
    def target(name: str) -> str:
        return " " + name.strip()

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> PromptFormat:
        fields = ("style", "context_chars", "include_group", "memory_size", "memory_style")
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
