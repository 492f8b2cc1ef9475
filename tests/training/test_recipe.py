"""The retriever recipe's planner (``genbel.training.recipe.plan_recipe``): budget, cut, plan file."""

from __future__ import annotations

import pytest

from genbel.errors import ConfigError
from genbel.training.recipe import RecipeConfig, RecipePlan, _read_plan, frozen_layers, plan_recipe
from tests.helpers import raises_code
from tests.training.retriever_fixtures import make_docs, make_kb


def _fixed(s1: float, s2: float, rate: float):
    """A stand-in for the machine measurement: fixed seconds per step and names per second."""
    return lambda enc, table, cfg, seed: (s1, s2, rate)


def test_the_plan_keeps_the_default_steps_when_the_budget_allows(encoder):
    kb = make_kb()
    cfg = RecipeConfig(sapbert_steps=1, sapbert_batch=4, max_minutes=30)
    plan = plan_recipe(kb, make_docs(), encoder, cfg, measure=_fixed(0.5, 2.0, 100.0))
    assert not plan.cut and not plan.over_budget
    assert plan.sapbert_steps == 1 and plan.mentions == 6 and plan.biosyn_steps == 1
    assert plan.estimates["sapbert"] == 0.5 and plan.estimates["biosyn"] == 2.0
    assert plan.estimates["mining"] == pytest.approx((plan.kb_names + 6) / 100.0)
    assert plan.total_seconds == pytest.approx(sum(plan.estimates.values()))
    assert "ETA" in plan.describe(30) and "cut" not in plan.describe(30)


def test_a_tight_budget_cuts_stage_one_and_says_so(encoder):
    kb = make_kb()
    # 6 mentions = 1 BioSyn step of 100 s: of the 120 s budget ~20 s are left for 1-s stage-1 steps
    cfg = RecipeConfig(sapbert_steps=40, min_sapbert_steps=1, sapbert_batch=1, max_minutes=2, index_names=0)
    plan = plan_recipe(kb, make_docs(), encoder, cfg, measure=_fixed(1.0, 100.0, 1000.0))
    assert plan.cut and not plan.over_budget and plan.sapbert_steps == 19
    assert "cut to fit the budget" in plan.describe(2)
    slow = plan_recipe(kb, make_docs(), encoder, cfg, measure=_fixed(1.0, 500.0, 1000.0))
    assert slow.over_budget and slow.sapbert_steps == 1 and "exceeds the budget" in slow.describe(2)
    # no budget: every step asked for, up to one pass over the 11 KB pairs + 6 mentions × 2 (23 pairs)
    unbounded = RecipeConfig(sapbert_steps=40, sapbert_batch=1, max_minutes=None)
    assert plan_recipe(kb, make_docs(), encoder, unbounded, measure=_fixed(1.0, 500.0, 1.0)).sapbert_steps == 23


def test_bad_settings_and_plan_files_are_coded_errors(encoder, tmp_path):
    with raises_code("E490", ConfigError):
        RecipeConfig(max_minutes=-1).check()
    with raises_code("E023", ConfigError):
        RecipeConfig(sapbert_steps=0).check()
    bad = tmp_path / "plan.json"
    bad.write_text('{"sapbert_steps": 3}')
    with raises_code("E491", ConfigError):
        _read_plan(bad)


def test_frozen_layers_train_the_top_layers(encoder):
    n = len(encoder.model.encoder.layer)
    assert frozen_layers(encoder.model, 1) == n - 1
    assert frozen_layers(encoder.model, n + 3) == 0
    assert isinstance(RecipePlan.__dataclass_fields__["estimates"].default_factory(), dict)


def test_a_resumed_run_must_keep_the_plans_settings(encoder, tmp_path):
    from genbel.training.recipe import _plan_json

    cfg = RecipeConfig(sapbert_steps=1, sapbert_batch=4, max_minutes=30)
    plan = plan_recipe(make_kb(), make_docs(), encoder, cfg, measure=_fixed(0.5, 2.0, 100.0))
    path = tmp_path / "plan.json"
    path.write_text(_plan_json(plan, cfg))
    # the budget (and the index size) may change: the recorded plan is what runs
    assert _read_plan(path, RecipeConfig(sapbert_steps=1, sapbert_batch=4, max_minutes=90)).sapbert_steps == 1
    with raises_code("E352", ConfigError, match=r"sapbert_steps=1 \(now 7\)"):
        _read_plan(path, RecipeConfig(sapbert_steps=7, sapbert_batch=4))


def test_the_closing_line_compares_the_time_with_the_eta(encoder):
    from genbel.training.recipe import eta_line

    plan = plan_recipe(make_kb(), make_docs(), encoder, RecipeConfig(sapbert_steps=1, sapbert_batch=4),
                       measure=_fixed(60.0, 60.0, 1000.0))
    assert plan.total_seconds == pytest.approx(120.0, abs=1.0)
    line = eta_line(plan, 180.0, 200.0)
    assert "3 min 00 s after the plan (its ETA 2 min 00 s, ×1.50)" in line and "3 min 20 s in all" in line
    assert "resumed part only" in eta_line(plan, 10.0, 20.0, resumed=True)
