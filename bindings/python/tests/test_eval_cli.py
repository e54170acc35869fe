"""The report pipeline end to end on a micro profile: markdown, stamped figures, CLI parsing."""
import pytest

pytest.importorskip("sako.eval", reason="the sako package is not importable")
pytest.importorskip("matplotlib", reason="matplotlib is needed for the report's figures")
from sako.eval import cli  # noqa: E402

MICRO = {
    "sim": dict(n_items=400, n_users=30, n_requests=40, k=5, sweep=(10.0,), calibrate=False),
    "speed": dict(sizes=(300,), reps=3),
}


def test_build_report_micro(tmp_path, monkeypatch):
    # keep peers out: the micro run checks the pipeline, not their speed
    from sako.eval import speed
    monkeypatch.setattr(speed, "PEERS", {})
    path = cli.build_report(("sim", "speed"), MICRO, tmp_path, 3, None, "micro")
    text = path.read_text()
    assert "## Headline" in text and "## 1. Simulated grocery world" in text and "## 4. Speed" in text
    assert "regret" in text and "original numpy path" in text
    figs = sorted(p.name for p in (tmp_path / "figures").glob("*.png"))
    assert {"sim_regret.png", "sim_rates.png", "sim_new_products.png", "speed.png"} <= set(figs)
    for name in figs:
        assert f"figures/{name}" in text
        assert (tmp_path / "figures" / name).stat().st_size > 5000


def test_cli_rejects_unknown_command(capsys):
    with pytest.raises(SystemExit):
        cli.main(["nonsense"])


def test_git_commit_string():
    from sako.eval.report import git_commit
    s = git_commit()
    assert isinstance(s, str) and s
