"""Model versions through the Python package: the retrain's gate and result, list,
read, activate (rollback), pin, and the policy's gate fields."""
from __future__ import annotations

import math

import pytest

import sako

from versions_world import (A, B, HOLDOUT_BASKETS, challenger_world, champion_world, holdout,
                            open_world)


@pytest.fixture
def world(tmp_path):
    e = open_world(str(tmp_path / "v.db"))
    champion_world(e)
    v1 = e.retrain_for(sako.RetrainReason.MANUAL)
    assert v1.version == 1 and v1.status == "active" and v1.champion == 0
    yield e
    e.close()


def priors(e):
    return (e.category_prior(A), e.category_prior(B))


def test_rejected_candidate_keeps_the_active_version(world):
    challenger_world(world)
    holdout(world, A)
    before = priors(world)
    v = world.retrain_for(sako.RetrainReason.EVENTS)
    assert v.version == 2 and v.status == "rejected" and v.scored
    assert v.reason_names == ("events",)
    assert v.holdout_baskets == HOLDOUT_BASKETS and v.champion == 1
    assert v.score < v.champion_score - 0.01
    assert v.verdict.startswith("rejected: NDCG@20")
    assert priors(world) == before
    assert world.version().version == 1
    with pytest.raises(sako.InvalidArgument, match="rejected"):
        world.activate(2)


def test_passed_candidate_is_activated_and_rolls_back(world):
    challenger_world(world)
    holdout(world, B)
    v1_now = priors(world)
    items_v1 = [world.item(i).alpha for i in (1021, 2021)]
    stats = world.retrain()  # the 0.3 call: returns Stats, activates when the gate passes
    assert stats.model_version == 2
    r = world.retrain_result()
    assert r.status == "active" and r.verdict.startswith("passed") and r.score > r.champion_score
    assert r.options["prior_strength"] == 20.0 and "seed" not in r.options
    assert priors(world) != v1_now
    back = world.activate(1)
    assert back.status == "active" and world.version(2).status == "inactive"
    assert priors(world) == v1_now
    assert [world.item(i).alpha for i in (1021, 2021)] == items_v1
    listed = world.versions()
    assert [v.version for v in listed] == [2, 1]
    d = listed[0].as_dict()
    assert d["status"] == "inactive" and d["reasons"] == ["manual"]


def test_reopen_serves_the_rolled_back_version(tmp_path):
    path = str(tmp_path / "reopen.db")
    with open_world(path) as e:
        champion_world(e)
        e.retrain()
        challenger_world(e)
        holdout(e, B)
        e.retrain()
        e.activate(1)
        online = priors(e), [e.item(i) for i in (1001, 1021, 2011, 2021)]
    with sako.open(path, seed=7, durability="off") as e:
        assert e.version().version == 1
        assert (priors(e), [e.item(i) for i in (1001, 1021, 2011, 2021)]) == online


def test_pin_keeps_automatic_retrains_back(world):
    assert world.pin(1).pinned
    challenger_world(world)
    holdout(world, B)
    v = world.retrain_for(sako.RetrainReason.DRIFT)
    assert v.status == "inactive" and "pinned" in v.verdict
    assert world.version().version == 1
    assert world.activate(2).status == "active"
    assert not world.pin(1, False).pinned


def test_errors(world):
    with pytest.raises(sako.NotFound):
        world.version(99)
    with pytest.raises(sako.NotFound):
        world.activate(99)
    with pytest.raises(sako.InvalidArgument):
        world.activate(0)
    with pytest.raises(sako.InvalidArgument):
        world.version(-1)
    with pytest.raises(sako.InvalidArgument):
        world.retrain_for(0)
    with pytest.raises(sako.InvalidArgument, match="keep_versions"):
        world.policy = {"keep_versions": 0}
    with pytest.raises(sako.InvalidArgument, match="gate_margin"):
        world.policy = {"gate_margin": 2.0}


def test_no_retrain_yet():
    with sako.open(None, seed=1) as e:
        assert e.versions() == []
        with pytest.raises(sako.NotFound):
            e.version()
        with pytest.raises(sako.NotFound):
            e.retrain_result()
        e.upsert_categories([(1, 0, "x")])
        e.upsert_items([(10, 1)])
        v = e.retrain_for(sako.RetrainReason.MANUAL)  # in memory: finiteness only
        assert v.status == "active" and not v.scored and "in-memory" in v.verdict
        assert math.isfinite(v.root_mean)


def test_policy_gate_fields_round_trip(world):
    world.policy = {"gate_margin": 0.05, "keep_versions": 3, "gate_holdout_events": 1234,
                    "gate_holdout_fraction": 0.1, "gate_min_baskets": 7}
    p = world.policy
    assert (p.gate_margin, p.keep_versions, p.gate_holdout_events, p.gate_holdout_fraction,
            p.gate_min_baskets) == (0.05, 3, 1234, 0.1, 7)
    assert p.as_dict()["keep_versions"] == 3


def test_cli_lists_activates_and_pins(tmp_path, capsys):
    from sako.cli import main

    path = str(tmp_path / "cli.db")
    with open_world(path) as e:
        champion_world(e)
        e.retrain()
        challenger_world(e)
        holdout(e, B)
        e.retrain()
    assert main(["versions", path]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].split()[:2] == ["2", "active"] and out[1].split()[:2] == ["1", "inactive"]
    assert main(["versions", path, "--activate", "1", "--pin", "1"]) == 0
    out = capsys.readouterr().out
    assert "version 1 is active" in out and "version 1 pinned" in out
    with sako.open(path) as e:
        assert e.version().version == 1 and e.version().pinned
        assert main(["versions", path]) == 2  # held by this engine
        assert "open in an engine" in capsys.readouterr().err
    assert main(["versions", path, "--activate", "9"]) == 2
    assert "no model version 9" in capsys.readouterr().err
