"""Figures (matplotlib, each stamped with data, seed and git commit) and the markdown report."""
from __future__ import annotations

import math
import subprocess
from pathlib import Path

import numpy as np

from .data import checkout_root
from .metrics import fmt_ci


def git_commit() -> str:
    """The checkout's commit (with "+uncommitted changes" when the tree outside docs/ is
    dirty), or a note saying why there is none (an installed package has no checkout)."""
    root = checkout_root()
    if root is None:
        return "none (sako installed, not run from a source checkout)"
    try:
        head = subprocess.run(["git", "-C", str(root), "rev-parse", "--short=12", "HEAD"],
                              capture_output=True, text=True, timeout=10)
        if head.returncode != 0:
            return "no commit yet"
        c = head.stdout.strip()
        st = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--", ".", ":!docs"],
                            capture_output=True, text=True, timeout=10)
        return c + ("+uncommitted changes" if st.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown (git unavailable)"


class Figures:
    def __init__(self, out_dir: Path, seed: int, commit: str):
        import matplotlib
        matplotlib.use("Agg")
        self.dir = Path(out_dir) / "figures"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.seed = seed
        self.commit = commit
        self.files: list[str] = []

    def new(self, w=7.5, h=4.2, **kw):
        import matplotlib.pyplot as plt
        return plt.subplots(figsize=(w, h), **kw)

    def save(self, fig, name: str, data: str) -> str:
        import matplotlib.pyplot as plt
        fig.text(0.005, 0.005, f"data: {data} | seed: {self.seed} | commit: {self.commit}",
                 fontsize=6.5, color="0.4", ha="left", va="bottom")
        fig.tight_layout(rect=(0, 0.04, 1, 1))
        path = self.dir / name
        fig.savefig(path, dpi=110)
        plt.close(fig)
        self.files.append(name)
        return f"figures/{name}"


def _prior_refresh_events() -> int:
    try:
        from . import sako_adapter
        if sako_adapter.available():
            import sako
            return int(sako.default_options().get("prior_refresh_events", 0))
    except Exception:  # noqa: BLE001
        pass
    return 0


def _windowed(x: np.ndarray, n_windows: int) -> tuple[np.ndarray, np.ndarray]:
    w = max(1, x.size // n_windows)
    m = x[: (x.size // w) * w].reshape(-1, w).mean(axis=1)
    return (np.arange(m.size) + 0.5) * w, m


# ------------------------------------------------------------------ sections

def sim_section(res, figs: Figures, seconds: float, probe: dict | None = None) -> tuple[str, dict]:
    from .sim import summary
    cfg = res.cfg
    rows = summary(res)
    k = cfg.k
    imps = cfg.n_requests * k
    data = f"simulated world on {res.catalog_source.split(',')[0]}"
    by = {r["policy"]: r for r in rows}
    orig = by.get("original Beta(1,1) TS")
    sako_cat = by.get("libsako (category prior)")
    ref = by.get("reference category-prior TS (numpy)")
    head = {}

    # figures
    fig, axes = figs.new(11, 4.2, ncols=2)
    x = np.arange(1, cfg.n_requests + 1) * k
    for tr in res.trajectories:
        axes[0].plot(x, np.cumsum(res.pop_oracle - tr.value), label=tr.name)
        axes[1].plot(x, np.cumsum(res.personal_oracle - tr.value), label=tr.name)
    for ax, t in zip(axes, ["vs best fixed top-k (population oracle)", "vs personal oracle"]):
        for s in res.shift_steps:
            ax.axvline(s * k, color="k", ls=":", lw=0.8)
        for s in res.arrival_steps:
            ax.axvline(s * k, color="0.7", ls="--", lw=0.5)
        ax.set_xlabel("impressions")
        ax.set_ylabel("cumulative expected-reward regret")
        ax.set_title(t, fontsize=10)
    axes[0].legend(fontsize=7)
    f_regret = figs.save(fig, "sim_regret.png", data)

    fig, axes = figs.new(11, 4.2, ncols=2)
    nw = 40
    for tr in res.trajectories:
        xx, c = _windowed(tr.clicks / k, nw)
        axes[0].plot(xx * k, c, label=tr.name)
        xx, p = _windowed(tr.purchases / k, nw)
        axes[1].plot(xx * k, p, label=tr.name)
    for ax, t in zip(axes, ["click rate per impression", "purchase rate per impression"]):
        for s in res.shift_steps:
            ax.axvline(s * k, color="k", ls=":", lw=0.8)
        ax.set_xlabel("impressions")
        ax.set_title(t, fontsize=10)
    axes[0].legend(fontsize=7)
    f_rates = figs.save(fig, "sim_rates.png", data)

    fig, ax = figs.new()
    for tr in res.trajectories:
        xx, s = _windowed(tr.new_shown / k, nw)
        ax.plot(xx * k, s, label=tr.name)
    for s in res.arrival_steps:
        ax.axvline(s * k, color="0.7", ls="--", lw=0.5)
    ax.set_xlabel("impressions")
    ax.set_ylabel("share of slots")
    ax.set_title("recommendations going to products that arrived during the run", fontsize=10)
    ax.legend(fontsize=7)
    f_new = figs.save(fig, "sim_new_products.png", data)

    fit = res.calib.fit
    f_fit = None
    if fit:
        fig, ax = figs.new(6.5, 4.2)
        rr = fit["rank_freq_real"]
        rs = fit["rank_freq_sim"]
        ax.loglog(np.arange(1, (rr > 0).sum() + 1), rr[rr > 0], ".", ms=3, label="instacart baskets_sample")
        ax.loglog(np.arange(1, (rs > 0).sum() + 1), rs[rs > 0], ".", ms=3, label="simulated (fitted)")
        ax.set_xlabel("product rank")
        ax.set_ylabel("lines in 23.8k basket lines")
        ax.set_title("appeal calibration: rank-frequency of products", fontsize=10)
        ax.legend(fontsize=8)
        f_fit = figs.save(fig, "sim_calibration.png", "instacart/baskets_sample + products.csv")

    L = []
    L.append("## 1. Simulated grocery world: regret\n")
    L.append(f"Catalog: {res.catalog_source}; {cfg.n_users:,} users; {cfg.n_requests:,} requests of "
             f"k = {k} slots = **{imps:,} impressions**; {cfg.new_share:.0%} of the products arrive "
             f"during the run in {len(res.arrival_steps)} batches (grey dashes); the appeal of "
             f"{cfg.shift_aisle_share:.0%} of the aisles shifts ×e or ×1/e at "
             f"{', '.join(f'{s * k:,}' for s in res.shift_steps)} impressions (dotted). "
             f"Catalog-average click probability {cfg.mean_click:.0%} (max {cfg.p_max:.0%}), "
             f"purchase given click ~ Beta(4, 6); each user has {cfg.n_staples} staples "
             f"(click ≥ {cfg.staple_click:.0%}, buy {cfg.staple_buy:.0%}). Seed {cfg.seed}; "
             f"{seconds:.0f} s.\n")
    refresh = _prior_refresh_events()
    if refresh:
        L.append(f"Category priors only help once they are refreshed from evidence: libsako's documented "
                 f"schedule is every `prior_refresh_events` = {refresh:,} events (impressions, clicks and "
                 "purchases all count); before the first refresh every Thompson policy behaves like the "
                 "flat one.")
        if probe:
            verdict = "had refreshed its priors" if probe["refreshed"] else \
                "had **not** refreshed its priors (events_since_refresh = n_events)"
            L.append(f"Probe on this catalog ({probe['n_items']:,} items): after {probe['n_events']:,} "
                     f"events in batches of 1,000, libsako {verdict}. The rows \"+ retrain every …\" call "
                     "`retrain()` on that schedule, as an operator would, to show what refreshed priors give.")
        L.append("")
    L.append("*ratio* = the policy's regret / the original Beta(1,1) TS's regret (population oracle).\n")
    L.append("Regret is pseudo-regret in expected reward (0.7·P(click) + P(purchase), the original "
             "system's weights) summed over impressions. *Population oracle*: the best fixed top-k "
             "given every product's true rates (the yardstick for a non-personalised bandit). "
             "*Personal oracle*: also knows each user's preferences and staples.\n")
    L.append("| policy | regret vs population oracle | ratio | regret vs personal oracle | click rate | "
             "purchase rate | exp. reward / imp. | share to new products | run time |")
    L.append("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        ratio = f"{r['regret_pop'] / orig['regret_pop']:.2f}" if orig else ""
        L.append(f"| {r['policy']} | {r['regret_pop']:,.0f} | {ratio} | {r['regret_personal']:,.0f} | "
                 f"{r['ctr']:.2%} | {r['purchase_rate']:.2%} | {r['exp_reward_per_imp']:.4f} | "
                 f"{r['new_share']:.2%} | {r['seconds']:.0f} s |")
    L.append("")
    cand = sako_cat or ref
    if orig and cand:
        ratio = cand["regret_pop"] / orig["regret_pop"]
        ratio_p = cand["regret_personal"] / orig["regret_personal"]
        head["regret_ratio"] = ratio
        head["regret_ratio_personal"] = ratio_p
        head["regret_policy"] = cand["policy"]
        ok = ratio <= 0.5
        L.append(f"**Target (issue #4): {cand['policy']} at most half the cumulative regret of the original "
                 f"Beta(1,1) TS over the first 100,000 impressions of a 50k-product catalog.** Measured here over "
                 f"{imps:,} impressions of a {res.n_items:,}-product catalog: "
                 f"ratio **{ratio:.2f}** vs the population oracle ({ratio_p:.2f} vs the personal "
                 f"oracle) — target {'met' if ok else 'NOT met'}.\n")
        if sako_cat is None:
            L.append("libsako's binding was not built when this report was generated, so the ratio above is "
                     "that of the numpy reference implementation of the same category-prior rule.\n")
        head["sweep"] = [(r["policy"], r["regret_pop"] / orig["regret_pop"]) for r in rows
                         if "prior_strength=" in r["policy"] or "retrain every" in r["policy"]
                         or (r["policy"].startswith("reference") and sako_cat is not None)]
        if head["sweep"]:
            try:
                from sako import default_options
                default_kappa = f"{default_options()['prior_strength']:g}"
            except ImportError:  # the binding is not built: the numpy reference ran instead
                default_kappa = "unknown (binding not built)"
            L.append("Other configurations (prior_strength = pseudo-observations of an item's category "
                     f"prior; libsako's default is {default_kappa}): " +
                     "; ".join(f"{n}: ratio {v:.2f}" for n, v in head["sweep"]) + ".\n")
        if ref and sako_cat:
            L.append(f"The numpy reference of the category-prior rule (priors refreshed every 10,000 events) reaches a ratio of "
                     f"{ref['regret_pop'] / orig['regret_pop']:.2f}.\n")
    L.append(f"![cumulative regret]({f_regret})\n")
    L.append(f"![click and purchase rates]({f_rates})\n")
    L.append(f"![new products]({f_new})\n")
    if fit:
        L.append("### Calibration of product appeal\n")
        L.append(f"log appeal = aisle effect + ε. The aisle effects are the real aisles' log purchase rates "
                 f"(sd {res.calib.sigma_aisle:.2f}); ε ~ N(0, σ²) with σ = **{res.calib.sigma_item:.2f}** "
                 f"fitted by maximum likelihood of a Poisson-lognormal model to the {fit['n_lines']:,} "
                 f"product lines of instacart/baskets_sample over all {fit['n_products']:,} products "
                 f"(log-likelihood {fit['loglik']:,.0f} vs {fit['loglik_poisson_only']:,.0f} with aisle "
                 f"effects alone). Fit — share of products by count in a sample of that size:\n")
        L.append("| lines per product | " + " | ".join(fit["bins"]) + " | top-1 % products' share of lines |")
        L.append("|---|" + "---:|" * (len(fit["bins"]) + 1))
        L.append("| real | " + " | ".join(f"{v:.2%}" for v in fit["hist_real"]) + f" | {fit['top1pct_share_real']:.1%} |")
        L.append("| simulated | " + " | ".join(f"{v:.2%}" for v in fit["hist_sim"]) + f" | {fit['top1pct_share_sim']:.1%} |")
        L.append("")
        L.append(f"![calibration]({f_fit})\n")
    else:
        L.append(f"Appeal not calibrated: {res.calib.source}.\n")
    return "\n".join(L), head


def ope_section(out: dict, figs: Figures, seconds: float) -> tuple[str, dict]:
    pct = lambda t: fmt_ci(*t, scale=100, digits=2)
    head = {}
    L = ["## 2. Off-policy evaluation on the Open Bandit Dataset sample\n"]
    L.append(f"obd/random/men and obd/bts/men: {out['n_random']:,} rows each (one row = one slot of an "
             f"impression), {out['n_actions']} items. On-policy CTR of the logs: uniform random "
             f"{pct(out['ctr_random_ci'])} % ({out['clicks_random']} clicks), Bernoulli TS "
             f"{pct(out['ctr_bts_ci'])} % ({out['clicks_bts']} clicks); the paper's full-data values for "
             f"the men campaign are 0.51 % ± 0.021 and 0.67 % ± 0.008 (obd/SOURCE.md). {seconds:.0f} s.\n")
    L.append("### Replay (Li et al. 2011) of learning policies on the uniform-random log\n")
    L.append("The policy proposes a slate of 3 for each row; a row counts when its item at the row's "
             "position is the logged one (the policy then learns from it). CTR with a Wilson 95 % interval.\n")
    L.append("| policy | matched rows | clicks | replay CTR % [95 % CI] |")
    L.append("|---|---:|---:|---:|")
    for r in out["replay"]:
        L.append(f"| {r.policy} | {r.matched} | {r.clicks:.0f} | {r.ctr * 100:.2f} [{r.lo * 100:.2f}, {r.hi * 100:.2f}] |")
    L.append("")
    L.append("### Frozen policies: IPS, SNIPS and doubly robust\n")
    L.append("Each policy learns from the first half of the random log (5,000 rows as impression/click "
             "events; category = `item_feature_1`, 7 values), is frozen, and is evaluated on the second half. "
             "Its action distribution per position comes from 2,000 Monte-Carlo slates. DR's reward model: "
             "per-item CTR of the training half shrunk to the global CTR (200 pseudo-rows). 95 % percentile "
             "bootstrap intervals; ESS = effective sample size of the importance weights.\n")
    L.append("| policy | IPS CTR % | SNIPS CTR % | DR CTR % | ESS |")
    L.append("|---|---:|---:|---:|---:|")
    for r in out["frozen"]:
        L.append(f"| {r.policy} | {pct(r.ips)} | {pct(r.snips)} | {pct(r.dr)} | {r.ess:,.0f} |")
        if r.policy.startswith("libsako (category") or (r.policy.startswith("reference") and "ope_dr" not in head):
            head["ope_dr"] = (r.policy, r.dr)
        if r.policy.startswith("original"):
            head["ope_dr_original"] = r.dr
    L.append("")
    u = out["uniform_from_bts"]
    L.append("**Estimators checked on real data.** The uniform policy's value estimated from the *BTS* log "
             f"(its real propensities, ESS {u.ess:,.0f} of {out['n_bts']:,}): IPS {pct(u.ips)} %, "
             f"SNIPS {pct(u.snips)} %, DR {pct(u.dr)} %, against the random log's on-policy "
             f"{pct(out['ctr_random_ci'])} % — the intervals overlap as they should if the estimators are "
             "unbiased. (The tests check unbiasedness on synthetic logs with a known value.)\n")
    if out.get("obp") is not None:
        L.append(f"**Cross-check with obp** on the same inputs: obp IPW {out['obp']['ipw'] * 100:.4f} % vs "
                 f"ours {out['obp_ours']['ipw'] * 100:.4f} %; obp DR {out['obp']['dr'] * 100:.4f} % vs ours "
                 f"{out['obp_ours']['dr'] * 100:.4f} %.\n")
    else:
        L.append(f"**Cross-check with obp skipped**: {out['obp_reason']}. obp 0.4.1 (the latest) requires "
                 "PyTorch, which pulls CUDA wheels of several GB; it is kept out of requirements-eval.txt. "
                 "Install `obp` into the venv to have this report cross-check the estimators.\n")
    n_ab, n_replay = out["rows_needed_men"]
    L.append("### What a 10,000-row sample can and cannot resolve\n")
    L.append(f"- About {out['clicks_random']}–{out['clicks_bts']} clicks per log: a CTR carries a relative "
             "standard error of ~15 %, so the logs' own 0.46 % vs 0.69 % is only marginally distinguishable, "
             "and the paper's 1.31× (0.51 % vs 0.67 %) needs the full data.\n"
             f"- Telling 0.51 % from 0.67 % at 80 % power needs ~{n_ab:,} impressions *per policy* on-policy; "
             f"replay on a 34-item uniform log keeps 1/34 of rows, so ~{n_replay:,} random-log rows "
             f"(the full men random log has 452,949).\n"
             f"- Replay here keeps ~{out['replay_expected_matches']:.0f} rows per policy, i.e. 0–5 clicks: "
             "its intervals span 0–2.5 % and rank nothing. IPS/DR on 5,000 held-out rows have intervals "
             "about ±0.2 points wide: they can flag a policy that collapses onto a bad item (low ESS), not "
             "a 30 % CTR gain.\n"
             "- What the sample *does* resolve: the estimators' correctness (the cross-log check above), "
             "propensity handling, and gross failures. It is a regression test of the pipeline, not a "
             "leaderboard.\n")
    # figure
    fig, ax = figs.new(8, 4.2)
    names = [r.policy for r in out["frozen"]]
    for j, (lab, attr) in enumerate([("IPS", "ips"), ("SNIPS", "snips"), ("DR", "dr")]):
        v = np.array([getattr(r, attr) for r in out["frozen"]]) * 100
        ax.errorbar(np.arange(len(names)) + (j - 1) * 0.15, v[:, 0],
                    yerr=[v[:, 0] - v[:, 1], v[:, 2] - v[:, 0]], fmt="o", capsize=3, label=lab)
    ax.axhline(out["ctr_random"] * 100, color="0.5", ls=":", label="random log on-policy")
    ax.axhline(out["ctr_bts"] * 100, color="0.2", ls="--", label="BTS log on-policy")
    ax.set_xticks(np.arange(len(names)))
    ax.set_xticklabels([n.replace(" (", "\n(") for n in names], fontsize=7)
    ax.set_ylabel("estimated CTR %")
    ax.set_title("OBD men: off-policy estimates of frozen policies (95 % CI)", fontsize=10)
    ax.legend(fontsize=7)
    f = figs.save(fig, "ope_estimates.png", "obd/random/men, obd/bts/men")
    L.append(f"![OPE estimates]({f})\n")
    return "\n".join(L), head


def ranking_section(results: list[dict], skipped: dict, figs: Figures, seconds: float, k: int) -> tuple[str, dict]:
    head = {}
    L = ["## 3. Ranking quality on real grocery histories\n"]
    L.append(f"Metrics at k = {k} with 95 % percentile-bootstrap intervals over queries; coverage = distinct "
             "recommended items / catalog. Bandit policies learn from events (basket lines as purchases plus "
             "10 unclicked impressions of random products per line; ml-100k: every rating an impression, "
             f"rating ≥ 4 also a click). {seconds:.0f} s.\n")
    tasks = []
    for r in results:
        if r["task"] not in tasks:
            tasks.append(r["task"])
    for t in tasks:
        rs = [r for r in results if r["task"] == t]
        L.append(f"### {t}\n")
        L.append(f"{rs[0]['n_queries']:,} queries. {rs[0].get('notes', '')}\n")
        L.append(f"| method | recall@{k} | NDCG@{k} | MAP@{k} | coverage |")
        L.append("|---|---:|---:|---:|---:|")
        for r in rs:
            L.append(f"| {r['method']} | {fmt_ci(*r['recall'])} | {fmt_ci(*r['ndcg'])} | "
                     f"{fmt_ci(*r['map'])} | {r['coverage']:.2%} |")
            head.setdefault(t, {})[r["method"]] = r["ndcg"][0]
        L.append("")
    for t, why in skipped.items():
        L.append(f"- {t}: skipped ({why})")
    if skipped:
        L.append("")
    if results:
        methods = []
        for r in results:
            if r["method"] not in methods:
                methods.append(r["method"])
        fig, ax = figs.new(10, 4.5)
        w = 0.8 / len(methods)
        for j, m in enumerate(methods):
            xs, ys, lo, hi = [], [], [], []
            for i, t in enumerate(tasks):
                r = next((r for r in results if r["task"] == t and r["method"] == m), None)
                if r:
                    xs.append(i + (j - len(methods) / 2 + 0.5) * w)
                    ys.append(r["ndcg"][0])
                    lo.append(r["ndcg"][0] - r["ndcg"][1])
                    hi.append(r["ndcg"][2] - r["ndcg"][0])
            ax.bar(xs, ys, width=w, yerr=[lo, hi], capsize=2, label=m)
        ax.set_xticks(range(len(tasks)))
        ax.set_xticklabels([t.replace(" (", "\n(") for t in tasks], fontsize=7)
        ax.set_ylabel(f"NDCG@{k}")
        ax.legend(fontsize=7)
        ax.set_title(f"ranking quality, NDCG@{k} (95 % CI)", fontsize=10)
        f = figs.save(fig, "ranking_ndcg.png", "instacart samples, groceries, ml-100k")
        L.append(f"![ranking]({f})\n")
    return "\n".join(L), head


def speed_section(out: dict, figs: Figures, seconds: float) -> tuple[str, dict]:
    rows = out["rows"]
    head = {}
    L = ["## 4. Speed side by side\n"]
    L.append(f"One process, same warm state for every engine; top k = {out['k']}; medians of repeated calls. "
             "Ratio = engine's median / libsako (category prior) median at the same size (> 1: libsako faster). "
             "The original numpy path: a new Generator, Beta draws for every product, a full argsort "
             "(as PERF.md); its update is an in-memory array add, libsako's includes a SQLite commit. "
             f"{seconds:.0f} s.\n")
    L.append("| engine | items | recommend µs | ratio | update (21 events) µs | ratio |")
    L.append("|---|---:|---:|---:|---:|---:|")
    for r in rows:
        rr = "" if math.isnan(r["rec_ratio"]) else f"{r['rec_ratio']:.1f}×"
        ur = "" if math.isnan(r["upd_ratio"]) else f"{r['upd_ratio']:.1f}×"
        L.append(f"| {r['engine']} | {r['n_items']:,} | {r['recommend_us']:,.1f} | {rr} | {r['update_us']:,.1f} | {ur} |")
        head[(r["engine"], r["n_items"])] = (r["rec_ratio"], r["upd_ratio"], r["recommend_us"])
    L.append("")
    for k_, v in out["skipped"].items():
        L.append(f"- {k_}: skipped — {v}")
    if out["skipped"]:
        L.append("")
    fig, axes = figs.new(11, 4.2, ncols=2)
    for eng in dict.fromkeys(r["engine"] for r in rows):
        rs = [r for r in rows if r["engine"] == eng]
        axes[0].loglog([r["n_items"] for r in rs], [r["recommend_us"] for r in rs], "o-", label=eng)
        axes[1].loglog([r["n_items"] for r in rs], [r["update_us"] for r in rs], "o-", label=eng)
    axes[0].set_title(f"recommend top-{out['k']} (median µs)", fontsize=10)
    axes[1].set_title("update, one request's 21 events (median µs)", fontsize=10)
    for ax in axes:
        ax.set_xlabel("items in catalog")
    axes[0].legend(fontsize=7)
    f = figs.save(fig, "speed.png", "synthetic warm state")
    L.append(f"![speed]({f})\n")
    return "\n".join(L), head
