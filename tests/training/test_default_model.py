"""The shipped default model (real SmolLM2 weights: slow)."""

from __future__ import annotations

import json

import pytest

from genbel.linkers.default import default_model_dir


def test_shipped_model_files_are_small_and_portable():
    d = default_model_dir()
    if d is None:
        pytest.skip("no default model shipped")
    size = sum(f.stat().st_size for f in d.rglob("*") if f.is_file())
    assert size <= 20_000_000
    meta = json.loads((d / "genbel_linker.json").read_text())
    assert meta["base_model"] == "smollm2-135m" and meta["architecture"] == "causal"
    assert json.loads((d / "adapter_config.json").read_text())["base_model_name_or_path"] == "smollm2-135m"
    assert not (d / "trie").exists() and not (d / "kb").exists()


@pytest.mark.slow
def test_shipped_model_links_with_the_default_kb():
    from genbel.data.queries import MentionQuery
    from genbel.kb import default_kb
    from genbel.linkers.generative import GenerativeLinker

    d = default_model_dir()
    if d is None:
        pytest.skip("no default model shipped")
    kb = default_kb()
    linker = GenerativeLinker.load(d, kb, num_beams=3)
    assert json.loads((d / "genbel_linker.json").read_text())["kb"]["fingerprint"] == kb.fingerprint()
    res = linker.link(
        [
            MentionQuery(text="hemochromatosis", type="Disease"),
            MentionQuery(text="Duchenne muscular dystrophy", type="Disease"),
        ],
        k=3,
    )
    assert "D006432" in kb.ids_of(res[0][0].concept_id)
    assert "D020388" in kb.ids_of(res[1][0].concept_id)  # MEDIC's row OMIM:300376|D020388
