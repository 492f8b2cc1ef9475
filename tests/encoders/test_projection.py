"""Output projection of a TextEncoder: every vector goes through it, it is saved and fingerprinted."""

from __future__ import annotations

import json

import numpy as np
import torch

from genbel.encoders import TextEncoder, encoder_fingerprint
from genbel.encoders.projection import PROJECTION_FILE, OutputProjection, fit_pca
from genbel.errors import ConfigError, FormatError
from tests.helpers import raises_code

TEXTS = ["breast cancer", "colon cancer", "adenomatous polyposis coli", "apc", "a much longer disease name"]


def _projected(encoder: TextEncoder, k: int = 8) -> tuple[TextEncoder, OutputProjection]:
    proj = fit_pca(encoder.encode(TEXTS * 3 + [t[::-1] for t in TEXTS] * 3), k)
    e = TextEncoder(encoder.model, encoder.tokenizer, pooling=encoder.pooling, max_length=encoder.max_length,
                    projection=proj)
    return e, proj


def test_pca_projection_keeps_the_top_directions_and_gives_unit_vectors(encoder):
    x = encoder.encode(TEXTS + [t.upper() + " x" for t in TEXTS])
    proj = fit_pca(x, 4)
    assert proj.matrix.shape == (32, 4) and proj.mean.shape == (32,)
    np.testing.assert_allclose(proj.matrix.T @ proj.matrix, np.eye(4), atol=1e-5)  # orthonormal directions
    y = proj.apply(x)
    assert y.shape == (len(x), 4) and y.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(y, axis=1), 1.0, atol=1e-5)
    again = fit_pca(x, 4)  # deterministic, signs included
    np.testing.assert_array_equal(again.matrix, proj.matrix)


def test_every_vector_of_a_projected_encoder_is_projected(encoder):
    e, proj = _projected(encoder)
    assert e.dim == 8 and encoder.dim == 32
    got = e.encode(TEXTS)
    assert got.shape == (len(TEXTS), 8)
    np.testing.assert_allclose(got, proj.apply(encoder.encode(TEXTS)), atol=1e-5)
    with torch.no_grad():  # the training path (embed) gives the same vectors as the inference path
        np.testing.assert_allclose(e.embed(TEXTS).numpy(), got, atol=1e-5)


def test_the_projection_is_saved_with_the_encoder_and_part_of_its_fingerprint(encoder, tmp_path):
    e, _ = _projected(encoder)
    e.save(tmp_path / "enc")
    assert (tmp_path / "enc" / PROJECTION_FILE).is_file()
    assert json.loads((tmp_path / "enc" / "genbel_encoder.json").read_text())["projection"] == PROJECTION_FILE
    again = TextEncoder.load(tmp_path / "enc")
    np.testing.assert_allclose(again.encode(TEXTS), e.encode(TEXTS), atol=1e-6)
    assert encoder_fingerprint(again) == encoder_fingerprint(e) != encoder_fingerprint(encoder)
    e.set_projection(None)  # without one, the fingerprint is the plain encoder's (existing caches stay valid)
    assert encoder_fingerprint(e) == encoder_fingerprint(encoder)


def test_a_projection_file_can_be_given_at_load_time(encoder_dir, encoder, tmp_path):
    _, proj = _projected(encoder, 6)
    proj.save(tmp_path / "p.safetensors")
    e = TextEncoder.load(encoder_dir, projection=tmp_path / "p.safetensors")
    assert e.dim == 6
    np.testing.assert_allclose(e.encode(TEXTS), proj.apply(encoder.encode(TEXTS)), atol=1e-5)


def test_a_bad_projection_is_refused_with_its_file(encoder_dir, encoder, tmp_path):
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"not a safetensors file")
    with raises_code("E460", FormatError, match="bad.safetensors"):
        TextEncoder.load(encoder_dir, projection=bad)
    wrong = OutputProjection(np.zeros(16, np.float32), np.ones((16, 4), np.float32))
    wrong.save(tmp_path / "wrong.safetensors")
    with raises_code("E460", FormatError, match="size 16, the encoder gives 32"):
        TextEncoder.load(encoder_dir, projection=tmp_path / "wrong.safetensors")
    with raises_code("E460", ConfigError):
        TextEncoder(encoder.model, encoder.tokenizer, projection=wrong)
