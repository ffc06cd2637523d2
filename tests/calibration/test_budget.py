"""Planning a calibration within a simulation budget."""

from __future__ import annotations

import pytest

from gangal_core.calibration.budget import SMALLEST_BANK, plan_budget
from gangal_core.errors import ConfigError


@pytest.mark.parametrize("budget", [1500, 5000, 20000, 123457, 3_000_000])
@pytest.mark.parametrize("rounds", [0, 1, 2, 4])
def test_budget_plans_never_pass_the_budget(budget: int, rounds: int) -> None:
    plan = plan_budget(budget, rounds=rounds)
    assert plan.total == budget  # the whole budget is used, and no more
    assert len(plan.rounds) == rounds and min((plan.first_bank, *plan.rounds)) >= SMALLEST_BANK
    assert 0 < plan.predictive <= min(4000, budget)
    assert plan_budget(budget, rounds=rounds, predictive_check=False).predictive == 0


def test_a_budget_too_small_says_the_smallest_that_works() -> None:
    with pytest.raises(ConfigError, match=r"--budget 500: too small .* give at least 853, or fewer --rounds"):
        plan_budget(500, rounds=2)
    assert plan_budget(853, rounds=2).total == 853  # the smallest it names works
    with pytest.raises(ConfigError, match="give at least 853"):
        plan_budget(852, rounds=2)
    with pytest.raises(ConfigError, match="--rounds"):
        plan_budget(10000, rounds=-1)
