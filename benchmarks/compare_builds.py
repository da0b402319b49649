"""Compare the verdicts and intervals of two builds of the same artifacts (issue 21, item 6).

Usage::

    python benchmarks/compare_builds.py RESULTS_A RESULTS_B [--artifacts fig4_norm_confidence ...]

RESULTS_A/B are ``results/`` folders of two builds (e.g. the committed quick build and a re-run
into an empty run store with another worker layout). Prints, per artifact, how many checks have the
same verdict, how many effects of B lie inside A's 95 % interval (and the reverse), the checks whose
verdict differs with both margins, and the claim verdicts after Holm of both builds. Holm's
correction runs over every empirical claim, so where B rebuilt only some artifacts, B's family takes
A's result for the others (printed): the claim verdicts then differ only through the rebuilt ones.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd

from embedding_norms.family import decide_claims
from embedding_norms.report import load_results


def _key(c) -> tuple:
    return (c.claim, c.test, c.regime)


def _inside(v, lo, hi) -> bool:
    return v is not None and lo is not None and hi is not None and lo <= v <= hi


def _margin(c) -> str:
    return "n/a" if c.margin is None else f"{c.margin:+.2f}"


def _seeds(c) -> str:
    return "[" + ", ".join(f"{v:.3g}" for v in (c.per_seed or [])) + "]"


def compare_runs(runs_a: Path, runs_b: Path) -> None:
    """Per run present in both run stores: kNN accuracy (%) and mean ||z|| at epochs 0, 1 and the last
    one, A / B (how far one run moves between the two builds)."""
    for d in sorted(p for p in Path(runs_b).iterdir() if (p / "metrics.csv").exists()):
        other = Path(runs_a) / d.name / "metrics.csv"
        if not other.exists():
            continue
        ma, mb = (pd.read_csv(f).dropna(subset=["knn_acc"]).set_index("epoch") for f in (other, d / "metrics.csv"))
        cells = [f"epoch {e}: kNN {ma.knn_acc[e]:.2f} / {mb.knn_acc[e]:.2f}, |z| {ma.z_norm_mean[e]:.3f} / "
                 f"{mb.z_norm_mean[e]:.3f}" for e in sorted({0, 1, int(ma.index.max())}) if e in ma.index and e in mb.index]
        print(f"run {d.name}: " + "; ".join(cells))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("a")
    ap.add_argument("b")
    ap.add_argument("--artifacts", nargs="*", default=None)
    ap.add_argument("--runs", nargs=2, metavar=("RUNS_A", "RUNS_B"), default=None,
                    help="also print each run's kNN and mean ||z|| at epochs 0, 1 and the last, A / B")
    args = ap.parse_args(argv)
    if args.runs:
        compare_runs(*map(Path, args.runs))
    ra = {r.name: r for r in load_results(args.a)}
    rb = {r.name: r for r in load_results(args.b)}
    names = args.artifacts or sorted(set(ra) & set(rb))
    total = same = in_a = in_b = 0
    for name in names:
        ca = {_key(c): c for c in ra[name].checks}
        cb = {_key(c): c for c in rb[name].checks}
        keys = [k for k in ca if k in cb]
        s = sum(ca[k].verdict == cb[k].verdict for k in keys)
        ia = sum(_inside(cb[k].effect, ca[k].ci_low, ca[k].ci_high) for k in keys)
        ib = sum(_inside(ca[k].effect, cb[k].ci_low, cb[k].ci_high) for k in keys)
        with_iv = sum(ca[k].ci_low is not None and cb[k].ci_low is not None for k in keys)
        print(f"{name}: {len(keys)} checks in both; same verdict {s}/{len(keys)}; effect of B inside A's interval "
              f"{ia}/{with_iv}, of A inside B's {ib}/{with_iv}")
        for k in keys:
            if ca[k].verdict != cb[k].verdict:
                print(f"  differs: {k[1]!r}: A {ca[k].verdict} {ca[k].effect:.3g} [{ca[k].ci_low}, {ca[k].ci_high}] "
                      f"margin {_margin(ca[k])}; B {cb[k].verdict} {cb[k].effect:.3g} [{cb[k].ci_low}, {cb[k].ci_high}] "
                      f"margin {_margin(cb[k])}")
                print(f"    per seed A {_seeds(ca[k])}; B {_seeds(cb[k])}")
        total, same, in_a, in_b = total + len(keys), same + s, in_a + ia, in_b + ib
    print(f"all: same verdict {same}/{total}; B's effect inside A's interval {in_a}, A's inside B's {in_b}")
    borrowed = sorted(set(ra) - set(rb))
    if borrowed:
        print(f"B's claim family takes A's results for the artifacts B did not build: {', '.join(borrowed)}")
    da = decide_claims(list(ra.values()))   # the whole family (Holm over every claim of each build)
    db = decide_claims([rb.get(n, ra[n]) for n in sorted(set(ra) | set(rb))])
    for claim in sorted(set(da) & set(db)):
        flag = "" if da[claim].verdict == db[claim].verdict else "   <-- differs"
        print(f"claim {claim}: A {da[claim].verdict}, B {db[claim].verdict}{flag}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
