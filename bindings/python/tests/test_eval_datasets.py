"""Where the evaluation finds its datasets: --datasets, else $SAKO_DATASETS, else the
checkout's ../shared/datasets; a clear error naming all three when none exists."""
from pathlib import Path

import pytest

pytest.importorskip("sako.eval", reason="the sako package is not importable")
from sako.eval import cli  # noqa: E402
from sako.eval import data as D  # noqa: E402


@pytest.fixture
def clean(monkeypatch):
    """No --datasets and no $SAKO_DATASETS; restores the override afterwards."""
    monkeypatch.delenv(D.ENV_VAR, raising=False)
    D.set_datasets_root(None)
    yield monkeypatch
    D.set_datasets_root(None)


@pytest.fixture
def no_checkout(clean):
    """As if the package were installed, not run from a checkout."""
    clean.setattr(D, "checkout_root", lambda: None)
    return clean


def _folder(tmp_path, name):
    p = tmp_path / name
    (p / "groceries").mkdir(parents=True)
    (p / "groceries" / "groceries.csv").write_text("milk,bread\n")
    return p


def test_option_wins_over_environment_and_checkout(clean, tmp_path):
    opt, env = _folder(tmp_path, "opt"), _folder(tmp_path, "env")
    clean.setenv(D.ENV_VAR, str(env))
    D.set_datasets_root(opt)
    assert D.datasets_root() == opt
    assert D.dataset_path("groceries", "groceries.csv") == opt / "groceries" / "groceries.csv"


def test_environment_wins_over_checkout(clean, tmp_path):
    env = _folder(tmp_path, "env")
    clean.setenv(D.ENV_VAR, str(env))
    assert D.datasets_root() == env
    assert D.have("groceries", "groceries.csv") and not D.have("obd")


def test_checkout_default_is_beside_the_repository(clean):
    root = D.checkout_root()
    if root is None:
        pytest.skip("not running from a source checkout")
    assert (root / "include" / "sako.h").is_file()
    assert D.checkout_default() == (root.parent / "shared" / "datasets").resolve()
    if D.checkout_default().is_dir():
        assert D.datasets_root() == D.checkout_default()


def test_installed_package_has_no_checkout_default(no_checkout, tmp_path):
    assert D.checkout_default() is None
    env = _folder(tmp_path, "env")
    no_checkout.setenv(D.ENV_VAR, str(env))
    assert D.datasets_root() == env


def test_none_found_names_all_three(no_checkout):
    with pytest.raises(D.DatasetMissing) as ei:
        D.datasets_root()
    msg = str(ei.value)
    assert "no datasets folder found" in msg
    assert "--datasets: not set" in msg
    assert "$SAKO_DATASETS: not set" in msg
    assert "../shared/datasets: none (not running from a source checkout)" in msg
    # loaders raise the same (a FileNotFoundError), have() is False, reports still render
    with pytest.raises(FileNotFoundError):
        D.groceries_baskets()
    assert not D.have("groceries")
    assert "no datasets folder" in D.describe_datasets_root()


def test_missing_folder_given_is_an_error_not_a_fallback(clean, tmp_path):
    env = _folder(tmp_path, "env")
    clean.setenv(D.ENV_VAR, str(env))
    D.set_datasets_root(tmp_path / "nope")
    with pytest.raises(D.DatasetMissing) as ei:
        D.datasets_root()
    msg = str(ei.value)
    assert f"{tmp_path / 'nope'} given by --datasets does not exist" in msg
    assert f"$SAKO_DATASETS: {env} (exists)" in msg and "../shared/datasets" in msg


def test_missing_file_names_the_folder(clean, tmp_path):
    env = _folder(tmp_path, "env")
    clean.setenv(D.ENV_VAR, str(env))
    with pytest.raises(D.DatasetMissing, match="ml-100k/u.data not found under the datasets folder"):
        D.ml100k_ratings()


def test_cli_option_sets_the_folder(clean, tmp_path):
    opt = _folder(tmp_path, "opt")
    cli._choose_datasets(str(opt))
    assert D.datasets_root() == Path(opt)


def test_cli_exits_when_the_named_folder_is_missing(clean, tmp_path, capsys):
    with pytest.raises(SystemExit) as ei:
        cli.main(["ranking", "--datasets", str(tmp_path / "nope"), "--out", str(tmp_path / "o")])
    assert ei.value.code == 2
    err = capsys.readouterr().err
    assert "does not exist" in err and "$SAKO_DATASETS" in err and "../shared/datasets" in err


def test_cli_warns_and_goes_on_when_nothing_is_configured(no_checkout, capsys):
    cli._choose_datasets(None)
    assert "warning: no datasets folder found" in capsys.readouterr().err
