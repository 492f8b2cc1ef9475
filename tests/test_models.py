"""genbel.models: packaged model aliases and the coded error of a model that cannot be loaded."""

from __future__ import annotations

import pytest

from genbel.errors import ConfigError, GenbelError
from genbel.models import PACKAGED, loading
from tests.helpers import raises_code


def test_a_failed_load_says_what_a_model_reference_can_be() -> None:
    with raises_code("E030", ConfigError, match="'no/such-model'") as e:
        with loading("no/such-model", "text encoder"):
            raise OSError("We couldn't connect to 'https://huggingface.co' to load the files.")
    msg = str(e.value)
    assert "couldn't connect" in msg and "hub id (needs internet)" in msg
    assert all(alias in msg for alias in PACKAGED)
    with raises_code("E030", ConfigError, match="Repo id must use"):
        with loading("/nonexist"):
            raise ValueError("Repo id must use alphanumeric chars")


def test_genbel_errors_and_other_exceptions_pass_through() -> None:
    with pytest.raises(GenbelError, match="mine"):
        with loading("x"):
            raise GenbelError("mine")
    with pytest.raises(KeyError):
        with loading("x"):
            raise KeyError("not a loading failure")
