"""TextEncoder: pooling, truncation, batched inference, save/load."""

from __future__ import annotations

import json

import numpy as np
import torch

from genbel.encoders import TextEncoder
from genbel.errors import ConfigError
from tests.helpers import raises_code


def test_encoder_unit_vectors_in_input_order(encoder):
    texts = ["a much longer disease name here", "apc", "colon cancer", ""]
    batch = encoder.encode(texts)
    assert batch.shape == (4, 32) and batch.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(batch, axis=1), 1.0, atol=1e-5)
    with torch.no_grad():
        one_by_one = np.stack([encoder.embed([t])[0].numpy() for t in texts])
    np.testing.assert_allclose(batch, one_by_one, atol=1e-5)  # padding and length sorting change nothing
    assert encoder.encode([]).shape == (0, 32)


def test_encoder_pooling_truncation_and_save(encoder_dir, tmp_path):
    mean = TextEncoder.load(encoder_dir)
    cls = TextEncoder.load(encoder_dir, pooling="cls", max_length=6)
    assert mean.pooling == "mean" and mean.max_length == 25
    assert not np.allclose(mean.encode(["breast cancer"]), cls.encode(["breast cancer"]))
    # [CLS] + 4 word pieces fit into 6 tokens with [SEP]: both strings are cut to "brea"
    a, b = cls.encode(["breast cancer", "breakdown"])
    np.testing.assert_allclose(a, b, atol=1e-6)
    cls.save(tmp_path / "enc")
    again = TextEncoder.load(tmp_path / "enc")
    assert (again.pooling, again.max_length) == ("cls", 6)
    np.testing.assert_allclose(again.encode(["colon"]), cls.encode(["colon"]), atol=1e-6)
    with raises_code("E022", ConfigError, match="pooling"):
        TextEncoder(mean.model, mean.tokenizer, pooling="max")


def test_sentence_transformers_pooling_config_is_read(encoder_dir, tmp_path):
    import shutil

    d = tmp_path / "st"
    shutil.copytree(encoder_dir, d)
    (d / "1_Pooling").mkdir()
    (d / "1_Pooling" / "config.json").write_text(json.dumps({"pooling_mode_cls_token": True}))
    assert TextEncoder.load(d).pooling == "cls"
