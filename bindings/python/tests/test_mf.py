"""Matrix factorisation from Python (issue 10): sako.mf_fit against a NumPy reference
of the same algorithm written here (exact least squares per row), against `implicit`'s
ALS when it is installed, and the binding's argument handling."""
from __future__ import annotations

import numpy as np
import pytest

import sako

sp = pytest.importorskip("scipy.sparse")

MASK64 = (1 << 64) - 1
DEFAULT_SEED = 0x5A4B4F4D46  # SAKO_MF_DEFAULT_SEED: what seed 0 stands for


def _rotl(x: int, k: int) -> int:
    return ((x << k) | (x >> (64 - k))) & MASK64


def initial_factors(seed: int, n_rows: int, n_cols: int, k: int):
    """libsako's documented start: xoshiro256** seeded by splitmix64, user rows then
    item rows, (next >> 40) * 2^-24 * 0.01."""
    x = seed or DEFAULT_SEED
    s = []
    for _ in range(4):
        x = (x + 0x9E3779B97F4A7C15) & MASK64
        z = x
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK64
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK64
        s.append(z ^ (z >> 31))
    out = np.empty((n_rows + n_cols) * k, dtype=np.float32)
    for j in range(out.size):
        r = (_rotl((s[1] * 5) & MASK64, 7) * 9) & MASK64
        t = (s[1] << 17) & MASK64
        s[2] ^= s[0]
        s[3] ^= s[1]
        s[1] ^= s[2]
        s[0] ^= s[3]
        s[2] ^= t
        s[3] = _rotl(s[3], 45)
        out[j] = np.float32(r >> 40) * np.float32(2.0**-24) * np.float32(0.01)
    return out[: n_rows * k].reshape(n_rows, k), out[n_rows * k:].reshape(n_cols, k)


def reference_als(m, k, iterations, reg, alpha, seed):
    """Implicit ALS by the book (Hu, Koren, Volinsky 2008), in float64: every row
    solved exactly, users then items, from libsako's start."""
    x0, y0 = initial_factors(seed, m.shape[0], m.shape[1], k)
    x, y = x0.astype(np.float64), y0.astype(np.float64)
    mt = m.T.tocsr()

    def half(rows, fixed):
        out = np.empty((rows.shape[0], k))
        base = fixed.T @ fixed + reg * np.eye(k)
        for u in range(rows.shape[0]):
            cols = rows.indices[rows.indptr[u]:rows.indptr[u + 1]]
            r = rows.data[rows.indptr[u]:rows.indptr[u + 1]].astype(np.float64)
            yu = fixed[cols]
            a = base + yu.T @ (alpha * r[:, None] * yu)
            b = yu.T @ (1.0 + alpha * r)
            out[u] = np.linalg.solve(a, b)
        return out

    for _ in range(iterations):
        x = half(m, y)
        y = half(mt, x)
    return x, y


def loss(m, x, y, reg, alpha):
    """sum over all cells c (p - x.y)^2 + reg (|X|^2 + |Y|^2), densely."""
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    pred = x @ y.T
    dense = m.toarray().astype(np.float64)
    c = 1.0 + alpha * dense
    p = (dense > 0).astype(np.float64)
    return float((c * (p - pred) ** 2).sum() + reg * ((x ** 2).sum() + (y ** 2).sum()))


def random_matrix(n_rows, n_cols, density, seed):
    """Values in [0.5, 5); every row and column has an entry (when both exist)."""
    rng = np.random.default_rng(seed)
    m = sp.random(n_rows, n_cols, density=density, format="coo", random_state=rng,
                  dtype=np.float32)
    n = max(n_rows, n_cols) if n_rows and n_cols else 0
    diag = sp.coo_matrix((np.ones(n, np.float32), (np.arange(n) % max(n_rows, 1),
                                                   np.arange(n) % max(n_cols, 1))),
                         shape=(n_rows, n_cols))
    m = (m + diag).tocsr()
    m.sum_duplicates()
    m.data = (0.5 + 4.5 * (m.data % 1.0)).astype(np.float32)
    return m


def test_initial_factors_are_the_documented_ones():
    """The first half-iteration solves each user from the documented start: folding
    the user in against the start's item factors, warm-started at the start's user
    row, gives the same bits (fold-in is the training's row solve)."""
    m = random_matrix(30, 20, 0.2, 1)
    for seed in (0, 99):
        x0, y0 = initial_factors(seed, 30, 20, 4)
        assert x0.min() >= 0 and x0.max() < 0.01 and y0.min() >= 0 and y0.max() < 0.01
        u, _ = sako.mf_fit(m, factors=4, iterations=1, seed=seed, threads=1)
        g = sako.mf_gram(y0)
        for r in range(30):
            sl = slice(m.indptr[r], m.indptr[r + 1])
            x = sako.mf_fold_in(y0, m.indices[sl], m.data[sl], gram=g, x0=x0[r])
            assert np.array_equal(x, u[r]), (seed, r)


EPS32 = 2.0**-24


def row_systems(rows, fixed, reg, alpha):
    """Each row's (A, b) of the reference, in float64."""
    k = fixed.shape[1]
    base = fixed.T @ fixed + reg * np.eye(k)
    for u in range(rows.shape[0]):
        cols = rows.indices[rows.indptr[u]:rows.indptr[u + 1]]
        r = rows.data[rows.indptr[u]:rows.indptr[u + 1]].astype(np.float64)
        yu = fixed[cols]
        yield base + yu.T @ (alpha * r[:, None] * yu), yu.T @ (1.0 + alpha * r)


def assert_rows_solved(got, rows, fixed, reg, alpha):
    """Each row of `got` solves its system up to float32 rounding: relative error at
    most 8 k cond(A) 2^-24 (the bound tests/check_mf.c checks CG against a dense
    solve with). For exact solves, and for CG warm-started at the solution."""
    fixed = np.asarray(fixed, np.float64)
    k = fixed.shape[1]
    for u, (a, b) in enumerate(row_systems(rows, fixed, reg, alpha)):
        want = np.linalg.solve(a, b)
        bound = 8 * k * np.linalg.cond(a) * EPS32
        err = np.linalg.norm(got[u] - want) / np.linalg.norm(want)
        assert err <= bound, (u, err, bound)


def assert_rows_cg(got, start, steps, rows, fixed, reg, alpha):
    """Each row of `got` is `steps` CG steps on its system from `start`: its error in
    the A-norm is within CG's bound 2 ((sqrt(c) - 1) / (sqrt(c) + 1))^steps times the
    start's (c = cond(A)), plus float32 rounding (8 k c 2^-24 of the solution,
    measured in the A-norm)."""
    fixed = np.asarray(fixed, np.float64)
    k = fixed.shape[1]
    for u, (a, b) in enumerate(row_systems(rows, fixed, reg, alpha)):
        want = np.linalg.solve(a, b)
        c = np.linalg.cond(a)
        lmax = np.linalg.eigvalsh(a)[-1]

        def anorm(e):
            return float(np.sqrt(e @ a @ e))

        rate = (np.sqrt(c) - 1) / (np.sqrt(c) + 1)
        bound = 2 * rate ** steps * anorm(start[u] - want) + \
            np.sqrt(lmax) * 8 * k * c * EPS32 * np.linalg.norm(want)
        assert anorm(got[u] - want) <= bound, (u, anorm(got[u] - want), bound)


@pytest.mark.parametrize("seed", [0, 7])
def test_matches_numpy_reference(seed):
    """Against the reference above (exact float64 solves, users then items, from the
    same documented start). Row by row: after each iteration t, libsako's users are 3
    CG steps (the default) from their values of t - 1 on the reference's systems
    built from libsako's items of t - 1, and its items likewise on systems from its
    users of t (a fit of t iterations is the first t of a longer one: the run is
    deterministic). End to end, with cg_steps = factors: the loss of the reference
    within 2e-4 and the factors within 1 % (float32 CG, k steps, on systems with
    condition numbers of a few hundred leaves row errors up to ~5e-3 in the first
    iteration, where the warm start is the small random one; measured here: loss
    within 1e-4, factors within 5e-3)."""
    m = random_matrix(80, 50, 0.1, seed + 100)
    mt = m.T.tocsr()
    k, its, reg, alpha = 8, 5, 0.1, 2.0
    prev_u, prev_v = initial_factors(seed, 80, 50, k)
    for t in range(1, its + 1):
        u, v = sako.mf_fit(m, factors=k, iterations=t, regularization=reg, alpha=alpha,
                           seed=seed, threads=2)
        assert_rows_cg(u, prev_u, 3, m, prev_v, reg, alpha)
        assert_rows_cg(v, prev_v, 3, mt, u, reg, alpha)
        prev_u, prev_v = u, v
    u, v = sako.mf_fit(m, factors=k, iterations=its, regularization=reg, alpha=alpha,
                       cg_steps=k, seed=seed, threads=2)
    x, y = reference_als(m, k, its, reg, alpha, seed)
    lx, ls = loss(m, x, y, reg, alpha), loss(m, u, v, reg, alpha)
    assert abs(ls - lx) <= 2e-4 * lx, (ls, lx)
    assert np.linalg.norm(u - x) <= 1e-2 * np.linalg.norm(x)
    assert np.linalg.norm(v - y) <= 1e-2 * np.linalg.norm(y)
    # the comparison has teeth: another start gives factors further away than that
    x2, _ = reference_als(m, k, its, reg, alpha, seed + 1)
    assert np.linalg.norm(x2 - x) > 5e-2 * np.linalg.norm(x)


def test_default_cg_steps_close_to_exact():
    """3 CG steps per row (the default) end near exact ALS's loss: within 2 %."""
    m = random_matrix(120, 60, 0.08, 5)
    k, its, reg, alpha = 16, 10, 0.05, 1.0
    u, v = sako.mf_fit(m, factors=k, iterations=its, regularization=reg, alpha=alpha)
    x, y = reference_als(m, k, its, reg, alpha, 0)
    assert loss(m, u, v, reg, alpha) <= 1.02 * loss(m, x, y, reg, alpha)


def test_implicit_same_loss():
    """Against `implicit`'s ALS (CG, same factors, iterations, regularization, threads,
    float32): its confidence is alpha * value, ours 1 + alpha * value, so implicit gets
    the values 1 + alpha * r and alpha = 1, the same model. The two start from other
    random factors; our final training loss must not exceed the worst of implicit's
    over three seeds by more than the spread between those seeds."""
    try:
        from implicit.cpu.als import AlternatingLeastSquares
    except ImportError:
        pytest.skip("implicit is not installed (pip install -r "
                    "bindings/python/requirements-eval.txt)")
    from threadpoolctl import threadpool_limits

    m = random_matrix(400, 150, 0.05, 9)
    k, its, reg, alpha = 16, 15, 0.05, 3.0
    theirs = []
    shifted = m.copy()
    shifted.data = (1.0 + alpha * shifted.data).astype(np.float32)
    for seed in (1, 2, 3):
        with threadpool_limits(1, "blas"):  # implicit asks for one BLAS thread
            model = AlternatingLeastSquares(factors=k, iterations=its, regularization=reg,
                                            alpha=1.0, use_cg=True, num_threads=2,
                                            random_state=seed, dtype=np.float32)
            model.fit(shifted, show_progress=False)
        theirs.append(loss(m, model.user_factors, model.item_factors, reg, alpha))
    ours = [loss(m, *sako.mf_fit(m, factors=k, iterations=its, regularization=reg, alpha=alpha,
                                 threads=2, seed=s), reg, alpha) for s in (1, 2, 3)]
    spread = max(theirs) - min(theirs)
    assert max(ours) <= max(theirs) + spread + 1e-9 * max(theirs), (ours, theirs)


def test_deterministic_across_threads():
    m = random_matrix(500, 200, 0.03, 3)
    secs = np.full(3, -1.0)
    a = sako.mf_fit(m, factors=16, iterations=3, threads=1, seed=5, seconds=secs)
    assert np.all(secs > 0)  # each iteration timed, and the factors the same as untimed
    b = sako.mf_fit(m, factors=16, iterations=3, threads=4, seed=5)
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])
    c = sako.mf_fit(m, factors=16, iterations=3, threads=1, seed=6)
    assert not np.array_equal(a[1], c[1])


def test_fold_in_is_the_training_row():
    """Fold-in is the training's row solve: a user folded in against the item factors
    of iteration t - 1, warm-started from the user's vector of iteration t - 1, is
    bit for bit the user's vector of iteration t, and likewise an item against the
    users of iteration t (same Gram matrix, same CG). The exact solve is the solution
    up to rounding, and k CG steps approach it as CG's bound says."""
    m = random_matrix(60, 30, 0.15, 4)
    mt = m.T.tocsr()
    k, reg, alpha = 6, 0.1, 2.0
    u3, v3 = sako.mf_fit(m, factors=k, iterations=3, regularization=reg, alpha=alpha)
    u4, v4 = sako.mf_fit(m, factors=k, iterations=4, regularization=reg, alpha=alpha)
    g = sako.mf_gram(v3)
    np.testing.assert_allclose(g, v3.astype(np.float64).T @ v3, rtol=1e-5, atol=1e-7)
    for r in range(60):
        items, vals = m.indices[m.indptr[r]:m.indptr[r + 1]], m.data[m.indptr[r]:m.indptr[r + 1]]
        x = sako.mf_fold_in(v3, items, vals, gram=g, x0=u3[r], regularization=reg, alpha=alpha)
        assert np.array_equal(x, u4[r]), r
    g = sako.mf_gram(u4)
    for i in range(30):
        users, vals = mt.indices[mt.indptr[i]:mt.indptr[i + 1]], mt.data[mt.indptr[i]:mt.indptr[i + 1]]
        x = sako.mf_fold_in(u4, users, vals, gram=g, x0=v3[i], regularization=reg, alpha=alpha)
        assert np.array_equal(x, v4[i]), i
        # without a cached Gram matrix: the same bits
        assert np.array_equal(sako.mf_fold_in(u4, users, vals, x0=v3[i], regularization=reg,
                                              alpha=alpha), x)
        # the exact solve, and CG with k steps close to it
        xe = sako.mf_fold_in(u4, users, vals, gram=g, exact=True, regularization=reg,
                             alpha=alpha)
        xk = sako.mf_fold_in(u4, users, vals, gram=g, x0=v3[i], regularization=reg,
                             alpha=alpha, cg_steps=k)
        assert_rows_cg(xk[None, :], v3[i][None, :], k, mt[i], u4, reg, alpha)
        assert_rows_solved(xe[None, :], mt[i], u4, reg, alpha)
    # a user without history folds in to zero
    assert sako.mf_fold_in(u4, [], [], exact=True).tolist() == [0.0] * k


def test_matrix_forms():
    m = random_matrix(40, 25, 0.2, 6)
    ref = sako.mf_fit(m, factors=4, iterations=2)
    # the arrays themselves, and other scipy formats
    same = sako.mf_fit((m.data, m.indices, m.indptr), factors=4, iterations=2, n_cols=25)
    assert np.array_equal(ref[0], same[0]) and np.array_equal(ref[1], same[1])
    coo = sako.mf_fit(m.tocoo(), factors=4, iterations=2)
    assert np.array_equal(ref[1], coo[1])
    # duplicates are summed and explicit zeros dropped (on a copy)
    c = m.tocoo()
    dup = sp.coo_matrix((np.concatenate([c.data / 2, c.data / 2, [0.0]]),
                         (np.concatenate([c.row, c.row, [0]]),
                          np.concatenate([c.col, c.col, [24 if m[0, 24] == 0 else 0]]))),
                        shape=m.shape).tocsr()
    got = sako.mf_fit(dup, factors=4, iterations=2)
    np.testing.assert_allclose(got[1], ref[1], rtol=1e-5, atol=1e-7)
    # float64 data and int64 indices are converted
    wide = sako.mf_fit((m.data.astype(np.float64), m.indices.astype(np.int64), m.indptr),
                       factors=4, iterations=2, n_cols=25)
    assert np.array_equal(ref[1], wide[1])
    # empty sides
    u, v = sako.mf_fit(sp.csr_matrix((0, 5), dtype=np.float32), factors=3)
    assert u.shape == (0, 3) and v.shape == (5, 3)
    assert np.all(np.abs(v) < 1e-6)


def test_bad_arguments():
    m = random_matrix(10, 8, 0.3, 2)
    bad = m.copy()
    bad.data[2] = -1.0
    with pytest.raises(sako.InvalidArgument, match=r"entry 2 .*value -1 is not > 0"):
        sako.mf_fit(bad, factors=4)
    bad.data[2] = np.nan
    with pytest.raises(sako.InvalidArgument, match=r"entry 2"):
        sako.mf_fit(bad, factors=4)
    with pytest.raises(sako.InvalidArgument, match=r"column 9 is not in \[0, 8\)"):
        sako.mf_fit((np.ones(2), np.array([1, 9]), np.array([0, 2])), n_cols=8, factors=4)
    with pytest.raises(sako.InvalidArgument, match="must not decrease"):
        sako.mf_fit((np.ones(2), np.array([1, 2]), np.array([0, 2, 1, 2])), n_cols=8, factors=4)
    with pytest.raises(sako.InvalidArgument, match="differ"):
        sako.mf_fit((np.ones(3), np.array([1, 2]), np.array([0, 2])), n_cols=8, factors=4)
    with pytest.raises(sako.InvalidArgument, match="does not fit in 32 bits"):
        sako.mf_fit((np.ones(1), np.array([2**40]), np.array([0, 1])), n_cols=8, factors=4)
    with pytest.raises(sako.InvalidArgument, match="n_cols="):
        sako.mf_fit((np.ones(1), np.array([1]), np.array([0, 1])))
    for kw, needle in (({"factors": 0}, "factors 0"), ({"iterations": 0}, "iterations 0"),
                       ({"regularization": -1}, "regularization -1"),
                       ({"alpha": float("nan")}, "alpha nan"), ({"cg_steps": 65}, "cg_steps 65"),
                       ({"threads": 300}, "threads 300"), ({"factors": -2}, "factors -2"),
                       ({"factors": 2.5}, "factors must be an integer")):
        with pytest.raises(sako.InvalidArgument, match=needle):
            sako.mf_fit(m, **kw)
    with pytest.raises(sako.InvalidArgument, match="scipy.sparse"):
        sako.mf_fit([[1, 0], [0, 1]])
    u, v = sako.mf_fit(m, factors=4)
    with pytest.raises(sako.InvalidArgument, match=r"entry 1: item 8 is not in \[0, 8\)"):
        sako.mf_fold_in(v, [0, 8], [1, 1])
    with pytest.raises(sako.InvalidArgument, match="repeats entry 0"):
        sako.mf_fold_in(v, [3, 3], [1, 1])
    with pytest.raises(sako.InvalidArgument, match="differ in length"):
        sako.mf_fold_in(v, [3, 4], [1])
    with pytest.raises(sako.InvalidArgument, match="x not factors long"):
        sako.mf_fold_in(v, [3], [1], x0=np.zeros(5))
    with pytest.raises(sako.InvalidArgument, match="gram not factors x factors"):
        sako.mf_fold_in(v, [3], [1], gram=np.eye(3))
    with pytest.raises(sako.InvalidArgument, match="2-D"):
        sako.mf_gram(np.zeros(4, np.float32))



def test_documented_options_are_the_library_defaults():
    """docs/c-api.md's table of sako_mf_options against SAKO_MF_OPTIONS_INIT, and the
    Python defaults against both."""
    import inspect
    import os
    import re

    from sako import _sako
    from sako._engine import DTYPES

    doc = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "..", "docs",
                       "c-api.md")
    with open(doc, encoding="utf-8") as f:
        lines = f.read().splitlines()
    start = lines.index("| field | default | range |")
    rows = {}
    for ln in lines[start + 2:]:
        if not ln.startswith("|"):
            break
        cells = [c.strip() for c in ln.strip("|").split("|")]
        rows[cells[0].strip("`")] = float(re.match(r"[\d.]+", cells[1]).group(0))
    opt = np.zeros(1, DTYPES["sako_mf_options"])
    _sako.mf_options_init(opt)
    params = inspect.signature(sako.mf_fit).parameters
    assert set(rows) == set(DTYPES["sako_mf_options"].names) - {"version"}
    for name, value in rows.items():
        assert float(opt[name][0]) == value, name
        assert params[name].default == value, name
