"""Shipped name vectors (a pack): int8 vectors keyed by the text's hash, read back for known texts only."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from genbel.encoders.vector_pack import (
    NameVectorPack,
    dequantize_rows,
    pack_matches,
    quantize_rows,
    write_name_pack,
)
from genbel.errors import ConfigError
from tests.helpers import raises_code


def _unit(n: int, d: int, seed: int = 0) -> np.ndarray:
    x = np.random.default_rng(seed).standard_normal((n, d)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def test_int8_rows_round_trip_within_the_quantisation_step():
    x = _unit(200, 48)
    codes, scales = quantize_rows(x)
    assert codes.dtype == np.int8 and scales.dtype == np.float16
    y = dequantize_rows(codes, scales)
    np.testing.assert_allclose(np.linalg.norm(y, axis=1), 1.0, atol=1e-5)
    assert float((x * y).sum(1).min()) > 0.999


def test_a_pack_gives_back_the_vectors_of_its_texts_only(tmp_path):
    texts = [f"disease {i}" for i in range(300)]
    x = _unit(300, 24)
    path = write_name_pack(tmp_path / "p.safetensors", texts, x, "f" * 64, info={"kb": "tiny"})
    pack = NameVectorPack.load(path)
    assert pack is not None and len(pack) == 300 and pack.dim == 24
    assert pack.fingerprint == "f" * 64 and pack.info == {"kb": "tiny"}
    query = ["disease 7", "not in the pack", "disease 299", "disease 7"]
    got, found = pack.get(query)
    assert found.tolist() == [True, False, True, True]
    assert float(got[0] @ x[7]) > 0.999 and float(got[2] @ x[299]) > 0.999
    assert np.array_equal(got[0], got[3]) and not got[1].any()
    assert pack.get([])[0].shape == (0, 24)
    assert pack_matches(pack, "f" * 64)


def test_a_pack_of_another_encoder_is_not_used(tmp_path, caplog):
    pack = NameVectorPack.load(write_name_pack(tmp_path / "p.safetensors", ["a"], _unit(1, 8), "a" * 64))
    with caplog.at_level(logging.WARNING):
        assert not pack_matches(pack, "b" * 64)
    assert "E461" in caplog.text and "aaaaaaaaaaaaaaaa" in caplog.text


def test_a_damaged_pack_is_skipped_with_a_warning(tmp_path, caplog):
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"\x00" * 64)
    with caplog.at_level(logging.WARNING):
        assert NameVectorPack.load(bad) is None
        assert NameVectorPack.load(tmp_path / "missing.safetensors") is None
    assert caplog.text.count("E462") == 2 and "bad.safetensors" in caplog.text
    from safetensors.numpy import save_file

    save_file({"keys": np.array([2, 1], np.uint64), "codes": np.zeros((2, 4), np.int8),
               "scales": np.ones(2, np.float16)}, str(tmp_path / "unsorted.safetensors"),
              metadata={"format": "genbel-name-vectors", "version": "1", "encoder": "x", "dim": "4"})
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        assert NameVectorPack.load(tmp_path / "unsorted.safetensors") is None
    assert "not sorted" in caplog.text


def test_writing_a_pack_refuses_repeated_texts_and_keeps_no_partial_file(tmp_path):
    with raises_code("E463", ConfigError, match="same key"):
        write_name_pack(tmp_path / "p.safetensors", ["a", "a"], _unit(2, 4), "f")
    with raises_code("E463", ConfigError):
        write_name_pack(tmp_path / "p.safetensors", ["a", "b"], _unit(3, 4), "f")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("n", [1, 5000])
def test_pack_lookup_finds_every_text(tmp_path, n):
    texts = [f"name {i}" for i in range(n)]
    pack = NameVectorPack.load(write_name_pack(tmp_path / "p.safetensors", texts, _unit(n, 4), "f"))
    assert pack.get(texts)[1].all()


def test_four_bit_codes_pack_two_per_byte_and_odd_sizes_work(tmp_path):
    x = _unit(100, 7)
    codes, scales = quantize_rows(x, bits=4)
    assert codes.dtype == np.uint8 and codes.shape == (100, 4)
    y = dequantize_rows(codes, scales, 7)
    assert y.shape == (100, 7) and float((x * y).sum(1).min()) > 0.95
    texts = [f"n{i}" for i in range(100)]
    pack = NameVectorPack.load(write_name_pack(tmp_path / "p.safetensors", texts, x, "f", codec="int4"))
    assert pack is not None and (pack.dim, pack.codec) == (7, "int4")
    got, found = pack.get(texts[:3])
    assert found.all()
    np.testing.assert_allclose(got, y[:3], atol=1e-6)
    with raises_code("E463", ConfigError, match="bits"):
        quantize_rows(x, bits=2)


def test_a_product_quantised_pack_decodes_to_its_nearest_centroids(tmp_path):
    x = _unit(600, 16, seed=3)
    texts = [f"n{i}" for i in range(600)]
    path = write_name_pack(tmp_path / "p.safetensors", texts, x, "f", codec="pq", pq_subvectors=8)
    pack = NameVectorPack.load(path)
    assert pack is not None and pack.codec == "pq" and pack.codes.shape == (600, 8) and pack.centroids.shape == (8, 256, 2)
    got, found = pack.get(texts)
    assert found.all()
    np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)
    assert float((got * x).sum(1).mean()) > 0.98  # 2-dim sub-vectors, 256 centroids each
    with raises_code("E463", ConfigError, match="sub-vectors"):
        write_name_pack(tmp_path / "q.safetensors", texts, x, "f", codec="pq", pq_subvectors=5)
    with raises_code("E463", ConfigError, match="codec"):
        write_name_pack(tmp_path / "q.safetensors", texts, x, "f", codec="zip")
