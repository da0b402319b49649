"""Health record of a training run: collapse and divergence, measured after every epoch.

A run that trains without a NaN loss is not necessarily a run: it can collapse (every image
maps to one direction: the loss stalls, kNN falls to chance) or explode (norms overflow). The
paper's own limitation ("GradScale with p = 1 did not converge for the non-contrastive
methods") is a statement about exactly these states, so they are measured, stored in
``metrics.csv`` and end the run in a distinct state (``collapsed`` / ``diverged``) with the
epoch and the measured value, instead of ``done``.

Measures (probe set, eval-mode forward pass, float32), one ``metrics.csv`` column each:

* ``<v>_std_normalized`` for each embedding vector ``v`` (``z`` = projector output; ``p`` =
  predictor output for SimSiam/BYOL): mean over the ``d`` dimensions of the per-dimension
  standard deviation of the L2-normalised vectors. Chen & He (2021, SimSiam, Sec. 4.1 / Fig. 2)
  use it as the collapse measure: ``1/sqrt(d)`` for vectors spread over the sphere, ``0`` for
  a collapsed output. ``std_normalized_ref`` holds ``1/sqrt(d)``.
* ``nonfinite``: number of probe images whose ``h``, ``z`` or loss embedding has a NaN/inf entry.
* ``knn_at_chance``: 1 when the kNN accuracy of an evaluation epoch is within
  :data:`KNN_CHANCE_MARGIN` points of chance (``100 / classes``), 0 otherwise, empty when kNN was
  not evaluated. Recorded and named in the verdict, never decisive alone (a short smoke run can
  sit at chance without having collapsed).

Verdicts (:func:`divergence`, checked after every epoch; :func:`collapse`, at the end):

* **diverged** at the first epoch with a non-finite value or a mean norm (``h``, ``z`` or the
  loss embedding) above :data:`EXPLODING_NORM`;
* **collapsed** when, at the last epoch, the loss embedding's ``std_normalized`` is below
  :data:`COLLAPSE_STD_FRACTION` ``/ sqrt(d)``, or the loss was frozen (changed by at most
  :data:`FROZEN_LOSS_RTOL` relative) over the last :data:`FROZEN_LOSS_EPOCHS` epochs. The epoch
  reported is the first trained epoch (>= 1) from which the criterion held without interruption
  (epoch 0, the initialisation, is recorded but not judged).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np
import torch
import torch.nn.functional as F

#: A mean norm above this is "exploding": float16 (saved embeddings) ends at 65504, healthy runs
#: of the paper stay below ~1e3 even without norm control, so 1e6 leaves three orders of margin.
EXPLODING_NORM = 1e6
#: Collapsed when std of the normalised embedding < this fraction of 1/sqrt(d). Measured on tiny
#: test runs (d = 16, 4 epochs): healthy SimCLR/SimSiam >= 0.026 x 1/sqrt(d) from epoch 1 on (SimSiam's
#: p at initialisation: 0.005); collapsed runs (cut_constant=1000, SimSiam weight_decay=0.5) 0 to
#: 4e-4; the issue's SimSiam weight_decay=0.5 smoke run 7.6e-5 / 0.0625 = 0.0012.
COLLAPSE_STD_FRACTION = 0.005
#: Frozen loss: over this many consecutive last epochs ...
FROZEN_LOSS_EPOCHS = 3
#: ... the epoch-mean loss changed by at most this fraction of its magnitude (plus 1e-12).
FROZEN_LOSS_RTOL = 1e-6
#: kNN accuracy within this many percentage points of chance is "at chance".
KNN_CHANCE_MARGIN = 1.0


class Diverged(RuntimeError):
    """Training produced non-finite values (a NaN/inf loss, or embeddings that cannot be stored)."""


@torch.no_grad()
def std_normalized(x: torch.Tensor) -> float:
    """Mean per-dimension std of the L2-normalised rows of ``x`` ``(N, d)`` (SimSiam's collapse
    measure; ``1/sqrt(d)`` for isotropic vectors, 0 for collapse). NaN when ``x`` is not finite
    or has fewer than 2 rows."""
    if len(x) < 2 or not bool(torch.isfinite(x).all()):
        return float("nan")
    return float(F.normalize(x.double(), dim=1).std(dim=0).mean())


def health_columns(out: dict[str, torch.Tensor], has_predictor: bool, knn: float, num_classes: int) -> dict[str, float]:
    """Health columns of one epoch from :func:`~embedding_norms.evaluate.embed` outputs.

    Args:
        out: ``h``, ``z`` and the predictor output (``p``, or ``emb`` when it holds p) float tensors
            ``(N, .)`` of the probe set.
        has_predictor: True for SimSiam/BYOL.
        knn: kNN accuracy in percent, NaN when not evaluated this epoch.
        num_classes: classes of the kNN task (chance = ``100 / num_classes`` %).
    """
    row = {"z_std_normalized": std_normalized(out["z"])}
    p = out.get("p", out.get("emb")) if has_predictor else None  # predictor output (key "p" or "emb")
    if p is not None:
        row["p_std_normalized"] = std_normalized(p)
    row["std_normalized_ref"] = 1.0 / math.sqrt((p if p is not None else out["z"]).shape[1])
    bad = torch.zeros(len(out["h"]), dtype=torch.bool)
    for key in ("h", "z", "p", "emb"):
        if key in out:
            bad |= ~torch.isfinite(out[key]).all(dim=1)
    row["nonfinite"] = int(bad.sum())
    row["knn_at_chance"] = (float("nan") if math.isnan(knn)
                            else float(knn <= 100.0 / num_classes + KNN_CHANCE_MARGIN))
    return row


@dataclass
class Verdict:
    """Why a run is not healthy: final ``state``, the ``epoch`` it began, the ``value`` measured."""

    state: str  # "collapsed" or "diverged"
    epoch: int
    measure: str
    value: float
    threshold: float
    reason: str


def divergence(row: dict) -> Optional[Verdict]:
    """``diverged`` verdict for one epoch's metrics row, or None.

    Diverged: ``nonfinite > 0``, or a mean norm (``emb``/``p``, ``z``, ``h``) that is not finite or
    above :data:`EXPLODING_NORM`.
    """
    epoch = int(row["epoch"])
    if row.get("nonfinite", 0):
        return Verdict("diverged", epoch, "nonfinite", float(row["nonfinite"]), 0.0,
                       f"{int(row['nonfinite'])} probe embeddings are not finite at epoch {epoch}")
    for key in ("emb", "p", "z", "h"):
        if f"{key}_norm_mean" not in row:
            continue
        v = float(row[f"{key}_norm_mean"])
        if not math.isfinite(v) or v > EXPLODING_NORM:
            return Verdict("diverged", epoch, f"{key}_norm_mean", v, EXPLODING_NORM,
                           f"mean {key} norm {v:.3g} at epoch {epoch} exceeds the exploding-norm threshold "
                           f"{EXPLODING_NORM:.0e}")
    return None


def _run_start(flags: Sequence[bool]) -> Optional[int]:
    """Index where the trailing run of True values in ``flags`` begins (None if the last is False)."""
    if not flags or not flags[-1]:
        return None
    i = len(flags) - 1
    while i > 0 and flags[i - 1]:
        i -= 1
    return i


def collapse(rows: Sequence[dict], has_predictor: bool) -> Optional[Verdict]:
    """``collapsed`` verdict from the metrics rows of a finished run (epoch 0 first), or None.

    Uses the loss embedding's std (``p_std_normalized`` with a predictor, else
    ``z_std_normalized``) and the epoch-mean losses of epochs >= 1. The reason names the kNN
    accuracy of the last evaluation epoch when it is at chance.
    """
    if not rows:
        return None
    key = "p_std_normalized" if has_predictor else "z_std_normalized"
    limit = COLLAPSE_STD_FRACTION * float(rows[-1]["std_normalized_ref"])
    knn_rows = [r for r in rows if not math.isnan(float(r.get("knn_acc", float("nan"))))]
    rows = [r for r in rows if int(r["epoch"]) >= 1]  # the initialisation is not judged
    if not rows:
        return None
    stds = [float(r.get(key, float("nan"))) for r in rows]
    chance = (f"; kNN {knn_rows[-1]['knn_acc']:.1f} % is at chance"
              if knn_rows and float(knn_rows[-1].get("knn_at_chance", 0)) == 1.0 else "")
    start = _run_start([s < limit for s in stds])
    if start is not None:
        e = int(rows[start]["epoch"])
        return Verdict("collapsed", e, key, stds[-1], limit,
                       f"{key} {stds[-1]:.3g} < {COLLAPSE_STD_FRACTION} x 1/sqrt(d) = {limit:.3g} since epoch {e}"
                       f"{chance}")
    trained = rows
    if len(trained) >= FROZEN_LOSS_EPOCHS:
        last = np.array([float(r["loss"]) for r in trained[-FROZEN_LOSS_EPOCHS:]])
        spread = float(last.max() - last.min())
        if spread <= FROZEN_LOSS_RTOL * float(np.abs(last).max()) + 1e-12:
            e = int(trained[-FROZEN_LOSS_EPOCHS]["epoch"])
            return Verdict("collapsed", e, "loss_spread", spread, FROZEN_LOSS_RTOL,
                           f"loss frozen at {last[-1]:.6g} (spread {spread:.2g}) over epochs {e}-{int(trained[-1]['epoch'])}"
                           f"{chance}")
    return None
