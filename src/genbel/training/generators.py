"""Generators of synthetic sentences for SynCABEL-style training (:mod:`genbel.training.synth`).

:func:`make_generator` parses ``hf:MODEL``, ``openai:URL`` or ``template``:

* :class:`HFGenerator` — a local Hugging Face causal LM (e.g. ``hf:smollm2-135m``) prompted through
  its chat template, sampling with a fixed seed per request (reproducible, independent of batching);
* :class:`OpenAIGenerator` — any OpenAI-compatible ``/v1/chat/completions`` endpoint (vLLM,
  llama.cpp server, Ollama, OpenAI), stdlib :mod:`urllib`, with a timeout and retries; an endpoint
  that stays down or keeps answering garbage raises E353/E354;
* :class:`TemplateGenerator` — deterministic sentence templates (no model; a baseline and for tests).

A :class:`SynthRequest` says what to write (a sentence using one name of one concept).
"""

from __future__ import annotations

import json
import logging
import random
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from genbel.errors import ConfigError, Errors, GenbelError

logger = logging.getLogger(__name__)

SYSTEM_PROMPT = "You write single sentences in the style of biomedical research abstracts."
USER_PROMPT = (
    'Write one realistic sentence from a biomedical abstract that uses the term "{term}" ({group}) '
    "exactly as written.{definition} Answer with the sentence only."
)


@dataclass
class SynthRequest:
    """What to generate: a sentence using ``term`` (a name of ``concept_id``)."""

    concept_id: str
    term: str
    group: str
    definition: str | None = None
    seed: int = 0

    def messages(self) -> list[dict[str, str]]:
        d = f" (It means: {self.definition.strip()[:300]})" if self.definition else ""
        return [
            {"role": "system", "content": SYSTEM_PROMPT},
            {"role": "user", "content": USER_PROMPT.format(term=self.term, group=self.group, definition=d)},
        ]


class Generator(Protocol):
    """Turns requests into raw texts (``None`` for a request that produced nothing)."""

    name: str

    def generate(self, requests: Sequence[SynthRequest]) -> list[str | None]: ...


class TemplateGenerator:
    """Fills biomedical sentence templates (per semantic group; a generic set for other groups)."""

    name = "template"
    TEMPLATES: dict[str, tuple[str, ...]] = {
        "Disorders": (
            "Patients with {t} were enrolled in a prospective cohort study.",
            "We describe a family in which several members developed {t}.",
            "The prevalence of {t} was higher in the exposed group than in controls.",
            "Mutations in this gene have been reported in individuals with {t}.",
            "{T} was diagnosed in 12 of the 85 patients during follow-up.",
            "Treatment options for {t} remain limited.",
        ),
        "Chemicals & Drugs": (
            "Rats were treated with {t} for four weeks.",
            "The effect of {t} on blood pressure was assessed in healthy volunteers.",
            "{T} induced a dose-dependent increase in enzyme activity.",
            "Plasma concentrations of {t} were measured by HPLC.",
        ),
        "*": (
            "The role of {t} was examined in this study.",
            "Changes in {t} were observed in the treated group.",
            "{T} was assessed in all participants at baseline.",
        ),
    }

    def __init__(self, seed: int = 0) -> None:
        self.seed = seed

    def generate(self, requests: Sequence[SynthRequest]) -> list[str | None]:
        out: list[str | None] = []
        for r in requests:
            pool = self.TEMPLATES.get(r.group, self.TEMPLATES["*"])
            t = random.Random(f"{self.seed}:{r.concept_id}:{r.term}:{r.seed}").choice(pool)
            out.append(t.replace("{T}", r.term[:1].upper() + r.term[1:]).replace("{t}", r.term))
        return out


class HFGenerator:
    """A local causal LM through its chat template; nucleus sampling seeded per request."""

    def __init__(
        self,
        model: str = "smollm2-135m",
        *,
        max_new_tokens: int = 64,
        temperature: float = 0.7,
        top_p: float = 0.9,
        batch_size: int = 8,
        device: str | None = None,
        model_obj=None,
        tokenizer=None,
    ) -> None:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        from genbel.models import resolve_model

        self.name = f"hf:{model}"
        if model_obj is None:
            ref = resolve_model(model)
            tokenizer = AutoTokenizer.from_pretrained(ref)
            model_obj = AutoModelForCausalLM.from_pretrained(ref)
        self.model = model_obj.to(device or ("cuda" if torch.cuda.is_available() else "cpu")).eval()
        self.tokenizer = tokenizer
        self.max_new_tokens = max_new_tokens
        self.temperature = temperature
        self.top_p = top_p
        self.batch_size = batch_size

    def _prompt_ids(self, r: SynthRequest) -> list[int]:
        tok = self.tokenizer
        if getattr(tok, "chat_template", None):
            ids = tok.apply_chat_template(r.messages(), add_generation_prompt=True, tokenize=True)
            if isinstance(ids, dict) or hasattr(ids, "keys"):
                ids = ids["input_ids"]
            return list(ids)
        text = "\n".join(m["content"] for m in r.messages()) + "\n"
        return list(tok(text).input_ids)

    def generate(self, requests: Sequence[SynthRequest]) -> list[str | None]:
        import torch

        out: list[str | None] = []
        pad = (
            self.tokenizer.pad_token_id
            if self.tokenizer.pad_token_id is not None
            else self.tokenizer.eos_token_id
        )
        dev = next(self.model.parameters()).device
        for r in requests:  # one at a time: the seed fixes each request's sample whatever the batching
            ids = self._prompt_ids(r)
            torch.manual_seed(r.seed)
            with torch.inference_mode():
                gen = self.model.generate(
                    input_ids=torch.tensor([ids], device=dev),
                    attention_mask=torch.ones(1, len(ids), device=dev, dtype=torch.long),
                    do_sample=True,
                    temperature=self.temperature,
                    top_p=self.top_p,
                    max_new_tokens=self.max_new_tokens,
                    pad_token_id=pad,
                )
            out.append(self.tokenizer.decode(gen[0, len(ids) :], skip_special_tokens=True))
        return out


class OpenAIGenerator:
    """An OpenAI-compatible chat-completions endpoint (``/v1/chat/completions``)."""

    def __init__(
        self,
        url: str,
        *,
        model: str = "default",
        api_key: str | None = None,
        timeout: float = 60.0,
        retries: int = 3,
        backoff: float = 1.0,
        temperature: float = 0.7,
        max_tokens: int = 96,
    ) -> None:
        u = url.rstrip("/")
        if not u.endswith("/chat/completions"):
            u = u + ("/chat/completions" if u.endswith("/v1") else "/v1/chat/completions")
        self.url = u
        self.name = f"openai:{url}"
        self.model = model
        self.api_key = api_key
        self.timeout = timeout
        self.retries = max(1, retries)
        self.backoff = backoff
        self.temperature = temperature
        self.max_tokens = max_tokens

    def _post(self, payload: dict) -> dict:
        data = json.dumps(payload).encode("utf-8")
        headers = {"Content-Type": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        req = urllib.request.Request(self.url, data=data, headers=headers, method="POST")
        with urllib.request.urlopen(req, timeout=self.timeout) as resp:  # noqa: S310 - user-given endpoint
            body = resp.read().decode("utf-8", errors="replace")
        return json.loads(body)

    def complete(self, r: SynthRequest) -> str:
        payload = {
            "model": self.model,
            "messages": r.messages(),
            "temperature": self.temperature,
            "max_tokens": self.max_tokens,
            "seed": r.seed,
            "n": 1,
        }
        last = ""
        down = False
        for attempt in range(self.retries):
            if attempt:
                time.sleep(self.backoff * 2 ** (attempt - 1))
            try:
                obj = self._post(payload)
            except (urllib.error.URLError, TimeoutError, ConnectionError, OSError) as e:
                down, last = True, str(getattr(e, "reason", e))
                continue
            except json.JSONDecodeError as e:
                down, last = False, f"the response is not JSON ({e.msg})"
                continue
            try:
                content = obj["choices"][0]["message"]["content"]
                if not isinstance(content, str):
                    raise TypeError("content is not a string")
                return content
            except (KeyError, IndexError, TypeError) as e:
                down, last = False, f"no choices[0].message.content in the response ({e})"
        if down:
            raise GenbelError(
                Errors.E353.format(url=self.url, reason=f"unreachable after {self.retries} tries: {last}")
            )
        raise GenbelError(Errors.E354.format(url=self.url, tries=self.retries, reason=last))

    def generate(self, requests: Sequence[SynthRequest]) -> list[str | None]:
        return [self.complete(r) for r in requests]


def make_generator(
    spec: str,
    *,
    seed: int = 0,
    model: str | None = None,
    api_key: str | None = None,
    timeout: float = 60.0,
    retries: int = 3,
) -> Generator:
    """``template`` | ``hf:MODEL`` | ``openai:URL`` (``model`` = the model name the endpoint serves)."""
    kind, _, arg = spec.partition(":")
    if kind == "template" and not arg:
        return TemplateGenerator(seed)
    if kind == "hf" and arg:
        return HFGenerator(arg)
    if kind == "openai" and arg:
        return OpenAIGenerator(
            arg, model=model or "default", api_key=api_key, timeout=timeout, retries=retries
        )
    raise ConfigError(Errors.E355.format(spec=spec))
