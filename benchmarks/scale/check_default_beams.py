"""generative:default: its beams with the TailTrie (the new default layout) and with the TokenTrie layout,
for three mentions, 5 beams — prints {"identical": true|false, ...}.

Run:  nice -n 5 .venv/bin/python benchmarks/scale/check_default_beams.py
"""
import json
import time

import torch

torch.set_num_threads(2)
from genbel.generation.prompts import PromptFormat, parse_markup
from genbel.kb.loaders import default_kb
from genbel.linkers.registry import create_linker
from genbel.trie import CandidateTrie, TailTrie, TokenTrie

kb = default_kb()
t0 = time.time()
lk = create_linker("generative", kb)
print("loaded", round(time.time() - t0), type(lk.trie.trie).__name__, flush=True)
qs = [parse_markup(x) for x in [
    "Patients with [breast cancer]{Disorders} were studied.",
    "Germline mutations cause [familial adenomatous polyposis]{Disorders}.",
    "[Huntington disease]{Disorders} is an inherited disorder.",
]]
b_tail = lk.generate(qs, num_beams=5)
full = CandidateTrie.from_kb(kb, lk.tokenizer, target=PromptFormat.target, eos_token_id=lk.trie.eos_token_id,
                             show_progress=False, layout="full")
assert isinstance(full.trie, TokenTrie) and isinstance(lk.trie.trie, TailTrie)

lk.decoder.trie = full
b_full = lk.generate(qs, num_beams=5)
a = [[(b.name, round(b.logprob, 6)) for b in bs] for bs in b_tail]
b = [[(b.name, round(b.logprob, 6)) for b in bs] for bs in b_full]
print(json.dumps({"identical": a == b, "tail": a, "full": b}))
