"""The paper's claims (PAPER.md, "The claims"), each with a stable id used by the claim checks,
and the one *primary* check that decides each claim (declared here, before the data are seen).

An artifact tests one or more claims; each test is a :class:`~embedding_norms.report.ClaimCheck`
that names the claim id. The claim's verdict is its primary check's (:data:`PRIMARY`); the other
checks are *supporting*: shown, not counted. The primary checks of the empirical claims form one
family decided with Holm's correction (:mod:`embedding_norms.family`); the closed-form claims
(:data:`EXACT_CLAIMS`) are exact and stay outside it.
"""

from __future__ import annotations

import re
from typing import NamedTuple, Optional

CLAIMS: dict[str, str] = {
    "prop3.1": "Prop. 3.1: the gradient of a normalised loss w.r.t. z is orthogonal to z and its size is "
               "inversely proportional to ||z|| (|grad cos| = sin θ / ||z||).",
    "cor3.3": "Cor. 3.3: a gradient step grows the norm: ||z - γ g||² = ||z||² + γ² ||g||².",
    "conv-norm": "Convergence: steps to align a positive pair grow about quadratically with the embedding norm.",
    "conv-angle": "Convergence: steps to align a positive pair grow as the pair's angle approaches π.",
    "sim-imbalance": "Simulation: with a supervised InfoNCE loss on class-imbalanced data, frequent classes get "
                     "larger embedding norms.",
    "sim-density": "Simulation: points in dense regions (small distance to the 10th neighbour) get larger norms.",
    "norm-growth": "Embedding norms grow during SSL training.",
    "weight-decay": "Weight decay counteracts the norm growth (larger weight decay, smaller norms).",
    "cut-init": "Cut-initialization (dividing all initial parameters by c > 1) speeds up training.",
    "gradscale": "GradScale (gradient times ||z||^p) speeds up training, most of all on class-imbalanced data.",
    "gradscale-limit": "Limitation: GradScale with p = 1 did not converge for the non-contrastive methods "
                       "(and ImageNet-100).",
    "imbalance-norms": "On class-imbalanced data, classes with more training images get larger embedding norms.",
    "seen-unseen": "Training images get larger norms than unseen images of the same classes, and those larger "
                   "than images of novel classes.",
    "norm-knn": "kNN accuracy rises with the (normalised) embedding-norm bucket (the paper's Figure 4 shows a "
                "monotone rise; checked here as Spearman rho > 0 over the buckets).",
    "norm-human": "Human confidence rises with the norm: CIFAR-10N label agreement rises and CIFAR-10H label "
                  "entropy falls with the norm bucket.",
}


class ClaimSummary(NamedTuple):
    """A claim in one line for REPORT.md's opening table (issue 22).

    Attributes:
        short: the claim in a few words.
        evidence: where the paper shows it (section / figure; cf. the artifacts' ``PAPER_REF``).
        caveat: what changes the meaning of its verdict at any scale ('' when nothing does).
    """

    short: str
    evidence: str
    caveat: str = ""


#: claim id -> its one-line form (same keys as :data:`CLAIMS`).
CLAIM_SUMMARY: dict[str, ClaimSummary] = {
    "prop3.1": ClaimSummary("The gradient of a normalised loss is orthogonal to z, of size sin θ / ‖z‖",
                            "Prop. 3.1 (Sec. 3)"),
    "cor3.3": ClaimSummary("A gradient step grows the norm: ‖z − γg‖² = ‖z‖² + γ²‖g‖²", "Cor. 3.3 (Sec. 3)"),
    "conv-norm": ClaimSummary("Steps to align a positive pair grow about quadratically with ‖z‖",
                              "Sec. 3, simulation (a)", "simulation: no network"),
    "conv-angle": ClaimSummary("Steps to align a positive pair grow as its angle nears π", "Sec. 3, simulation (a)",
                               "simulation: no network"),
    "sim-imbalance": ClaimSummary("Simulation: frequent classes get larger norms", "Sec. 3, simulation (b)",
                                  "tested as each class's growth over its own initial norm"),
    "sim-density": ClaimSummary("Simulation: points in dense regions get larger norms", "Sec. 3, simulation (c)",
                                "ρ < 0 already before training: tested what training adds"),
    "norm-growth": ClaimSummary("Embedding norms grow during SSL training", "Sec. 4"),
    "weight-decay": ClaimSummary("Larger weight decay gives smaller norms", "weight-decay ablation (released notebook)"),
    "cut-init": ClaimSummary("Cut-initialization (initial weights / c) speeds up training", "Sec. 4.1"),
    "gradscale": ClaimSummary("GradScale speeds up training, most on imbalanced data", "Sec. 4.2"),
    "gradscale-limit": ClaimSummary("GradScale p = 1 does not converge for SimSiam / BYOL", "Sec. 4.2 (limitation)"),
    "imbalance-norms": ClaimSummary("Classes with more training images get larger norms", "Sec. 3.3 / 4.2"),
    "seen-unseen": ClaimSummary("Training images > unseen images > novel classes, in norm", "Sec. 5 (next to Fig. 4)"),
    "norm-knn": ClaimSummary("kNN accuracy rises with the norm", "Fig. 4"),
    "norm-human": ClaimSummary("Human confidence (CIFAR-10N/-10H) rises with the norm", "Fig. 4",
                               "the trend exists at epoch 0: tested given the epoch-0 norm"),
}

#: Claims checked by closed forms (exact, no seeds): outside the Holm family.
EXACT_CLAIMS = ("prop3.1", "cor3.3")


class PrimaryCheck(NamedTuple):
    """Identifies a claim's primary check from fields every check already carries.

    Attributes:
        artifact: the artifact (``results/<artifact>.json``) that makes the check.
        test: regular expression the check's ``test`` must match in full (numbers that depend on
            the profile, such as the last epoch, are left open).
        regime: regular expression the check's ``regime`` must match in full ('' = any).
        why: why this check is the claim's test (shown in REPORT.md).
    """

    artifact: str
    test: str
    regime: str = ""
    why: str = ""


_SIMCLR = "SimCLR, the paper's lead method and released example, CIFAR-10"
#: claim id -> its primary check. Rule: the paper's own comparison at this scale, on SimCLR / CIFAR-10
#: / z where the claim covers SimCLR, with the matched control where the design has one.
PRIMARY: dict[str, PrimaryCheck] = {
    "prop3.1": PrimaryCheck("fig1_gradient_geometry", r"size of the gradient is sin θ / ‖z‖.*", "",
                            "the proposition's formula |grad| = sin θ / ||z|| itself"),
    "cor3.3": PrimaryCheck("fig1_gradient_geometry", r"one gradient step on -cos\(z, y\).*", "",
                           "the corollary's identity itself"),
    "conv-norm": PrimaryCheck("fig_sim_convergence", r"least-squares fit of log\(steps\) on log\(norm\).*", "",
                              "the claim is an exponent (about 2) of steps against the norm"),
    "conv-angle": PrimaryCheck("fig_sim_convergence", r"steps to converge against the initial angle.*", "",
                               "the claim is an ordering of steps by the initial angle"),
    "sim-imbalance": PrimaryCheck("fig_sim_imbalance",
                                  r"slope of log class-norm growth \(trained / initial\) on log class weight", "",
                                  "what training did to each class (growth over its own initial norm), as a slope "
                                  "on log class weight over many seeds (issue 20)"),
    "sim-density": PrimaryCheck("fig_sim_density", r"training strengthens the relation \(own training points\)", "",
                                "the untrained network already gives rho < 0, so the test is what training adds, "
                                "on the points it was trained on (issue 20)"),
    "norm-growth": PrimaryCheck("fig_norm_growth", r"SimCLR: norm of z at the last epoch above its initial norm.*",
                                "", _SIMCLR),
    "weight-decay": PrimaryCheck("tab_weight_decay", r"SimCLR, z: norm at wd \S+ below wd \S+.*", "",
                                 _SIMCLR + "; largest against smallest weight decay of the sweep"),
    "cut-init": PrimaryCheck("tab_cut_init", r"SimCLR cifar10, whole regime, cut all: c=3 above c=1", "",
                             _SIMCLR + ", the released cut (all parameters, c = 3) over the whole schedule"),
    "gradscale": PrimaryCheck("tab_gradscale", r"SimCLR cifar10 imbalanced: p=1 - p=0 \(base lr\)", "",
                              _SIMCLR + " imbalanced (where the paper says the effect is largest), p = 1 against "
                              "p = 0 at the learning rate where p = 0 learns (issue 20)"),
    "gradscale-limit": PrimaryCheck("tab_gradscale", r"SimSiam cifar10 balanced: p=1 - p=0 \(base lr\)", "",
                                    "the claim is about the non-contrastive methods: SimSiam at the lr where p = 0 "
                                    "learns (issue 20)"),
    "imbalance-norms": PrimaryCheck("fig_imbalance_norms", r"SimCLR, z: within-class norm growth rises with class size", "",
                                    _SIMCLR + " imbalanced, the class mean norms themselves"),
    "seen-unseen": PrimaryCheck("fig_seen_vs_unseen", r"SimCLR: small norm => unseen, test vs train", "",
                                _SIMCLR + ": the first step of the claim (training images above unseen ones)"),
    "norm-knn": PrimaryCheck("fig4_norm_confidence", r"SimCLR CIFAR-10 z, augmented: kNN self-vote correct vs norm", "",
                             _SIMCLR + ": the released Figure 4 view (augmented train views, released kNN), "
                             "decided per image (issue 20)"),
    "norm-human": PrimaryCheck("fig4_norm_confidence",
                               r"SimCLR CIFAR-10 z, test: CIFAR-10H entropy vs norm given epoch-0 norm", "",
                               _SIMCLR + ": CIFAR-10H over all 10 000 test images, per image, given the untrained "
                               "network's norm (the trend exists at epoch 0; issue 20)"),
}


def is_primary(artifact: str, check) -> bool:
    """True when ``check`` (any object with ``claim``, ``test``, ``regime`` and ``descriptive``) of
    ``artifact`` is the primary check of its claim (:data:`PRIMARY`). A descriptive check never is."""
    spec: Optional[PrimaryCheck] = PRIMARY.get(check.claim)
    if spec is None or spec.artifact != artifact or getattr(check, "descriptive", False):
        return False
    return bool(re.fullmatch(spec.test, check.test)) and (not spec.regime or bool(re.fullmatch(spec.regime, check.regime)))
