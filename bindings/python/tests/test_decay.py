"""Decay through the binding (0.3): the option, its checks, its storage, and the
closed form of one half-life."""
from __future__ import annotations

import pytest

import sako

from conftest import fill

T0 = 1_700_000_000_000  # unix ms
DAY = 86_400_000


def test_default_is_no_decay():
    assert sako.default_options()["decay_half_life_days"] == 0.0
    with sako.open(None, seed=1) as e:
        assert e.options["decay_half_life_days"] == 0.0


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -1.0, 0.5, 2e6])
def test_bad_half_life(bad):
    with pytest.raises(sako.InvalidArgument, match="decay_half_life_days"):
        sako.open(None, decay_half_life_days=bad)


def test_one_half_life_halves_the_evidence():
    with sako.open(None, seed=2, prior="flat", personal=0, decay_half_life_days=10.0) as e:
        fill(e)
        e.update([(1, 100, "impression", T0)] * 10 + [(1, 100, "click", T0, 5)] * 4)
        # one half-life later, an impression elsewhere moves the log's time (an epoch)
        e.update([(2, 101, "impression", T0 + 10 * DAY)])
        it = e.item(100)
        assert it.clicks == pytest.approx(2.0, rel=1e-12)
        assert it.impressions == pytest.approx(5.0, rel=1e-12)
        assert it.alpha == pytest.approx(1.0 + 0.7 * 2.0, rel=1e-12)
        assert it.beta == pytest.approx(1.0 + 3.0, rel=1e-12)


def test_stored_and_reconfigured(db_path):
    with sako.open(db_path, decay_half_life_days=30.0) as e:
        fill(e)
        e.update([(1, 100, "click", T0, 5), (1, 100, "impression", T0)])
    with sako.open(db_path) as e:  # the stored half-life wins
        assert e.options["decay_half_life_days"] == 30.0
        before = e.stats().model_version
    with sako.open(db_path, decay_half_life_days=0.0, reconfigure=1) as e:
        assert e.options["decay_half_life_days"] == 0.0
        assert e.stats().model_version == before + 1  # a new half-life rebuilds from the log
        assert e.item(100).clicks == 1.0
