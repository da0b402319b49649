"""The paper's claims (PAPER.md, "The claims"), each with a stable id used by the claim checks.

An artifact tests one or more claims; each test is a :class:`~embedding_norms.report.ClaimCheck`
that names the claim id. REPORT.md's summary table lists every claim below with the verdict of
its checks (holds / does not hold / mixed / not run).
"""

from __future__ import annotations

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
