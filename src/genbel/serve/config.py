"""The settings of ``genbel serve``: what to load and the limits every request is held to."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields

from genbel.errors import ConfigError, Errors

#: the environment variable through which ``genbel serve --workers N`` hands its settings to each worker
CONFIG_ENV = "GENBEL_SERVE_CONFIG"


@dataclass(frozen=True)
class ServeConfig:
    """Settings of one server. Limits are per request unless said otherwise; 0 turns a limit off
    where noted."""

    kb: str = "default"                 #: what ``--kb`` names (``default``, a KB file or a saved KB dir)
    kb_format: str | None = None
    linker: str = "dense:default"       #: a registry spec (``default_linker(kb, prefer=...)``)
    detector: str | None = "default"    #: a ``genbel.ner`` detector spec for /annotate; None: no /annotate
    host: str = "127.0.0.1"
    port: int = 8000
    max_body_bytes: int = 1_000_000     #: request body (413 E543)
    max_text_chars: int = 50_000        #: a text or context (413 E544)
    max_mention_chars: int = 300        #: one mention's text (422 E541)
    max_token_chars: int = 500          #: a run of characters without whitespace (422 E553)
    max_mentions: int = 256             #: mentions in one /link request, entities in one /annotate text (413 E545)
    max_k: int = 20                     #: candidates per mention a request may ask for
    rate_limit: float = 20.0            #: requests per second per client address; 0 = no limit (429 E546)
    rate_burst: int = 40                #: requests a client may send at once before the rate applies
    timeout_s: float = 30.0             #: a request not answered in this time gets 408 E547
    batch_wait_ms: float = 10.0         #: how long the first mention of a batch waits for others
    max_batch: int = 512                #: mentions in one linker batch
    max_queue: int = 8192               #: mentions waiting for the linker before requests get 429 E548

    def __post_init__(self) -> None:
        positive = {
            "max_body_bytes": self.max_body_bytes, "max_text_chars": self.max_text_chars,
            "max_mention_chars": self.max_mention_chars, "max_token_chars": self.max_token_chars,
            "max_mentions": self.max_mentions, "max_k": self.max_k, "rate_burst": self.rate_burst,
            "timeout_s": self.timeout_s, "max_batch": self.max_batch, "max_queue": self.max_queue,
        }
        for name, value in positive.items():
            if not value > 0:
                raise ConfigError(Errors.E555.format(option=_option(name), reason=f"{value!r} must be > 0"))
        if self.rate_limit < 0:
            raise ConfigError(Errors.E555.format(option="--rate-limit", reason="must be >= 0 (0: no limit)"))
        if not 0 <= self.batch_wait_ms <= 1000:
            raise ConfigError(Errors.E555.format(option="--batch-wait-ms", reason="must be in 0..1000"))
        if not 0 < self.port < 65536:
            raise ConfigError(Errors.E555.format(option="--port", reason=f"{self.port} is not a TCP port"))

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> ServeConfig:
        known = {f.name for f in fields(cls)}
        data = json.loads(text)
        return cls(**{k: v for k, v in data.items() if k in known})


def _option(field_name: str) -> str:
    return "--" + field_name.removesuffix("_s").removesuffix("_bytes").removesuffix("_chars").replace("_", "-")
