"""The int8 weight format: quantisation round trip."""

from __future__ import annotations

import torch

from genbel.encoders.weights import dequantize_int8, quantize_int8


def test_int8_quantisation_round_trip_error_is_bounded():
    torch.manual_seed(0)
    state = {"w": torch.randn(64, 128), "bias": torch.randn(128), "small": torch.randn(4, 4)}
    q = quantize_int8(state)
    assert q["w"].dtype == torch.int8 and q["w.__scale"].shape == (64,)
    assert q["bias"].dtype == torch.float32 and q["small"].dtype == torch.float32
    back = dequantize_int8(q)
    assert set(back) == set(state)
    bound = (state["w"].abs().amax(1) / 127.0 / 2 + 1e-3)[:, None]
    assert bool(((back["w"] - state["w"]).abs() <= bound).all())
    assert torch.equal(back["bias"], state["bias"])
