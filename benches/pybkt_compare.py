#!/usr/bin/env python3
"""Side-by-side BKT fit: pyBKT (CAHLR, C++ build) vs spoc-engine, same CSV, same folds.

Usage:
    python3 benches/pybkt_compare.py --install             # once: venv + pyBKT 1.4.3 (needs g++)
    cargo bench --bench fit -- --write-csv /tmp/bkt200k.csv --attempts 200000
    python3 benches/pybkt_compare.py --csv /tmp/bkt200k.csv [--multilearn] [--forgets] \
        [--spoc target/release/spoc] [--folds 5] [--restarts 5] [--seed 42]

Both sides fit every skill with `--restarts` random restarts, then run
`--folds`-fold cross-validation split by learner. The folds are the ones
spoc-engine's `assign_folds` makes (learners ranked by
splitmix64(fnv1a64(user_id) ^ seed), dealt round-robin), recomputed here, so
both models are scored on exactly the same held-out learners. AUC / RMSE are
pooled over skills within a fold and averaged over folds on both sides.

pyBKT is not a test dependency: this script is run by hand.
"""

import argparse
import json
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
# Outside the repository on purpose: a venv is large and machine-specific.
DEFAULT_VENV = os.path.join(
    os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")), "spoc-engine", "pybkt-venv")
M64 = (1 << 64) - 1


def install(venv):
    """Create `venv` and build pyBKT from source there (its C++ E-step needs g++)."""
    os.makedirs(os.path.dirname(venv), exist_ok=True)
    subprocess.check_call([sys.executable, "-m", "venv", venv])
    pip = [os.path.join(venv, "bin", "python"), "-m", "pip", "install", "-q"]
    subprocess.check_call(pip + ["--upgrade", "pip", "setuptools", "wheel"])
    subprocess.check_call(pip + ["numpy", "pandas", "scikit-learn==1.7.2"])
    subprocess.check_call(
        pip + ["--no-build-isolation", "--no-binary", "pyBKT", "pyBKT==1.4.3"])
    print(f"pyBKT installed in {venv}")


def fnv1a(s):
    h = 0xCBF29CE484222325
    for b in s.encode("utf-8"):
        h = ((h ^ b) * 0x100000001B3) & M64
    return h


def splitmix(z):
    z = (z + 0x9E3779B97F4A7C15) & M64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & M64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & M64
    return z ^ (z >> 31)


def assign_folds(users, folds, seed):
    """Same split as spoc_engine::domain::fit::assign_folds."""
    ranked = sorted((splitmix(fnv1a(u) ^ seed), u) for u in set(users))
    return {u: i % folds for i, (_, u) in enumerate(ranked)}


def run_pybkt(df, args, fold_of):
    from pyBKT.models import Model

    kw = dict(multilearn=args.multilearn, forgets=args.forgets, multigs=args.multigs)
    model = Model(seed=args.seed, num_fits=args.restarts, parallel=True)
    t = time.perf_counter()
    model.fit(data=df, **kw)
    fit_s = time.perf_counter() - t
    params = model.params().reset_index()
    skills = {}
    for _, r in params.iterrows():
        d = skills.setdefault(r["skill"], {"learns": {}})
        if r["param"] in ("guesses", "slips") and r["class"] != "default":
            d.setdefault(r["param"], {})[str(r["class"])] = float(r["value"])
        elif r["param"] in ("learns", "forgets") and r["class"] != "default":
            if r["param"] == "learns":
                d["learns"][str(r["class"])] = float(r["value"])
            else:
                d.setdefault("forgets", {})[str(r["class"])] = float(r["value"])
        else:
            key = {"prior": "prior", "learns": "learn", "guesses": "guess",
                   "slips": "slip", "forgets": "forget"}[r["param"]]
            d[key] = float(r["value"])
    for d in skills.values():
        if d["learns"] and args.multilearn:
            d["learn"] = sum(d["learns"].values()) / len(d["learns"])
        if "forgets" in d:
            d["forget"] = sum(d["forgets"].values()) / len(d["forgets"])
        for many, one in (("guesses", "guess"), ("slips", "slip")):
            if many in d:
                d[one] = sum(d[many].values()) / len(d[many])

    aucs, rmses = [], []
    t = time.perf_counter()
    fold = df["user_id"].map(fold_of)
    for k in range(args.folds):
        train, test = df[fold != k], df[fold == k]
        m = Model(seed=args.seed, num_fits=args.restarts, parallel=True)
        m.fit(data=train, **kw)
        auc, rmse = m.evaluate(data=test, metric=["auc", "rmse"])
        aucs.append(auc)
        rmses.append(rmse)
    cv_s = time.perf_counter() - t
    return {"skills": skills, "auc": sum(aucs) / len(aucs), "rmse": sum(rmses) / len(rmses),
            "fit_s": fit_s, "cv_s": cv_s}


def run_spoc(args):
    cmd = [args.spoc, "fit", "--input", args.csv, "--folds", str(args.folds), "--format", "json"]
    if args.multilearn:
        cmd.append("--multilearn")
    if args.forgets:
        cmd.append("--forgets")
    if args.multigs:
        cmd.append("--multigs")
    if args.seed != 42:
        cmd += ["--seed", str(args.seed)]
    if args.restarts != 5:
        cmd += ["--restarts", str(args.restarts)]
    t = time.perf_counter()
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    wall = time.perf_counter() - t
    res = json.loads(out)
    return {"skills": res["skills"], "auc": res["cv"]["auc"], "rmse": res["cv"]["rmse"],
            "fit_s": res["fit_seconds"], "wall_s": wall}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--install", action="store_true", help="create the venv and install pyBKT, then exit")
    ap.add_argument("--venv", default=DEFAULT_VENV, help="venv holding pyBKT (default: ~/.cache/spoc-engine/pybkt-venv)")
    ap.add_argument("--csv", help="attempts in pyBKT's layout")
    ap.add_argument("--spoc", default="target/release/spoc", help="spoc binary (runs `spoc fit`)")
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--restarts", type=int, default=5)
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--multilearn", action="store_true")
    ap.add_argument("--forgets", action="store_true")
    ap.add_argument("--multigs", action="store_true", help="per-template guess/slip (spoc side needs --multigs wired)")
    ap.add_argument("--skip-pybkt", action="store_true")
    ap.add_argument("--skip-spoc", action="store_true")
    args = ap.parse_args()

    if args.install:
        install(args.venv)
        return
    if not args.csv:
        ap.error("--csv is required (or --install)")
    try:
        import pyBKT  # noqa: F401
    except ImportError:
        py = os.path.join(args.venv, "bin", "python")
        if os.path.exists(py) and not os.environ.get("SPOC_PYBKT_REEXEC"):
            os.environ["SPOC_PYBKT_REEXEC"] = "1"
            os.execv(py, [py] + sys.argv)  # re-run inside the venv that has pyBKT
        if not args.skip_pybkt:
            sys.exit("pyBKT not importable: run with --install first (or --skip-pybkt)")

    import pandas as pd

    df = pd.read_csv(args.csv, dtype={"user_id": str, "skill_name": str})
    if "template_id" in df.columns:
        df["template_id"] = df["template_id"].astype(str)
    fold_of = assign_folds(df["user_id"], args.folds, args.seed)
    variant = "multilearn" if args.multilearn else "standard"
    if args.forgets:
        variant += "+forgets"
    if args.multigs:
        variant += "+multigs"
    print(f"data: {len(df)} attempts, {df['user_id'].nunique()} learners, "
          f"{df['skill_name'].nunique()} skills; variant {variant}; "
          f"{args.restarts} restarts; {args.folds} folds by learner (seed {args.seed})")

    rows = []
    if not args.skip_pybkt:
        rows.append(("pyBKT 1.4.3", run_pybkt(df, args, fold_of)))
    if not args.skip_spoc:
        rows.append(("spoc-engine", run_spoc(args)))

    print(f"{'model':<12} {'cv_auc':>8} {'cv_rmse':>8} {'fit_s':>8} {'other_s':>9}")
    for name, r in rows:
        other = r.get("cv_s", r.get("wall_s"))
        label = "(cv)" if "cv_s" in r else "(wall)"
        print(f"{name:<12} {r['auc']:>8.4f} {r['rmse']:>8.4f} {r['fit_s']:>8.3f} {other:>8.3f} {label}")
    if len(rows) == 2:
        (_, p), (_, s) = rows
        print(f"speed-up (fit): {p['fit_s'] / s['fit_s']:.1f}x   auc delta (spoc - pyBKT): {s['auc'] - p['auc']:+.4f}")
        worst = 0.0
        for skill, ps in sorted(p["skills"].items()):
            ss = s["skills"].get(skill, {})
            diffs = {k: abs(ps[k] - ss[k]) for k in ("prior", "learn", "guess", "slip", "forget") if k in ps and k in ss}
            worst = max([worst] + list(diffs.values()))
            print(f"  {skill}: pyBKT " + " ".join(f"{k}={ps[k]:.3f}" for k in diffs)
                  + " | spoc " + " ".join(f"{k}={ss[k]:.3f}" for k in diffs))
        print(f"largest parameter gap between the two fits: {worst:.4f}")


if __name__ == "__main__":
    main()
