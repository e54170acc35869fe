"""The retrain policy through the package: Engine.policy (get/set, stored in the file) and
Engine.retrain_due()."""
from __future__ import annotations

import dataclasses

import pytest

import sako


def rec_events(n, clicked_every=0, start_rec=1):
    """n recommended impressions (rec ids start_rec..), every `clicked_every`-th clicked."""
    out = []
    for i in range(n):
        rec = start_rec + i
        out.append(sako.Event(1 + i % 5, 100 + i % 30, "impression", 0, recommendation_id=rec))
        if clicked_every and i % clicked_every == 0:
            out.append(sako.Event(1 + i % 5, 100 + i % 30, "click", 0, recommendation_id=rec))
    return out


def test_defaults_come_from_c(engine):
    assert engine.policy == sako.Policy()
    p = sako.Policy()
    assert (p.every_events, p.every_seconds, p.drift_fraction) == (0, 0, 0.0)
    assert (p.drift_window, p.drift_min_impressions) == (25_000, 12_500)
    assert sako.Policy.DRIFT_FRACTION == 0.8
    s = engine.retrain_due()
    assert not s.due and s.reasons == sako.RetrainReason(0) and s.reason == "not due"
    assert s.reason_names == ()


def test_set_whole_or_partly_and_reopen(db_path):
    with sako.open(db_path, seed=1) as e:
        e.policy = sako.Policy(every_events=1000, every_seconds=3600)
        e.policy = {"drift_fraction": 0.7, "drift_window": 400, "drift_min_impressions": 300}
        want = sako.Policy(1000, 3600, 0.7, 400, 300)
        assert e.policy == want
    with sako.open(db_path) as e:
        assert e.policy == want


@pytest.mark.parametrize("bad, field", [
    ({"drift_fraction": 1.0}, "drift_fraction"),
    ({"drift_fraction": float("nan")}, "drift_fraction"),
    ({"drift_fraction": "0.5"}, "drift_fraction"),
    ({"drift_window": 0}, "drift_window"),
    ({"drift_min_impressions": 25_001}, "drift_min_impressions"),
    ({"every_events": -1}, "every_events"),
    ({"every_seconds": 1.5}, "every_seconds"),
    ({"every_events": True}, "every_events"),
    ({"every_events": 2**53}, "every_events"),
    ({"nonsense": 1}, "nonsense"),
])
def test_bad_policy_refused_whole(engine, bad, field):
    engine.policy = {"every_events": 7}
    before = engine.policy
    with pytest.raises(sako.InvalidArgument, match=field):
        engine.policy = bad
    assert engine.policy == before


def test_not_a_policy(engine):
    with pytest.raises(sako.InvalidArgument, match="Policy"):
        engine.policy = 5


def test_events_trigger_and_retrain_resets(engine):
    engine.policy = {"every_events": 10}
    engine.update(rec_events(9))
    s = engine.retrain_due()
    assert not s.due and s.events_since == 9
    engine.update(rec_events(1, start_rec=100))
    s = engine.retrain_due()
    assert s.due and s.reasons == sako.RetrainReason.EVENTS and s.reason == "events"
    assert s.as_dict()["reasons"] == ["events"]
    engine.retrain()
    s2 = engine.retrain_due()
    assert not s2.due and s2.events_since == 0 and s2.retrained_at >= s.retrained_at


def test_drift_counters_and_trigger(engine):
    engine.policy = {"drift_fraction": 0.5, "drift_window": 160, "drift_min_impressions": 100}
    engine.update(rec_events(160, clicked_every=2))      # baseline: half clicked
    s = engine.retrain_due()
    assert s.baseline_impressions == 160
    assert s.baseline_conversion == pytest.approx(0.7 * 80 / 160)  # clicks weigh reward_click
    engine.update(rec_events(200, clicked_every=0, start_rec=1000))  # nothing clicked
    s = engine.retrain_due()
    assert s.due and s.reasons == sako.RetrainReason.DRIFT and s.reason_names == ("drift",)
    assert 150 < s.recent_impressions <= 160 and s.recent_conversion == 0.0
    # organic events (no recommendation id) are not part of the measure
    engine.update([sako.Event(1, 100, "click", 0)] * 50)
    assert engine.retrain_due().recent_conversion == 0.0


def test_status_is_frozen_and_closed_engine_raises(engine):
    s = engine.retrain_due()
    with pytest.raises(dataclasses.FrozenInstanceError):
        s.due = True  # type: ignore[misc]
    engine.close()
    with pytest.raises(sako.Misuse):
        engine.retrain_due()
    with pytest.raises(sako.Misuse):
        engine.policy
