"""The list of artifacts (figures and tables of the paper), in the order of REPORT.md.

Adding an artifact: write ``reproduce/<name>.py`` (see ``reproduce/artifact.py``) and add its
name here (and its claims to ``embedding_norms.claims``)."""

from __future__ import annotations

import importlib

from .artifact import Artifact

#: Module names under ``reproduce/``, in report order.
ARTIFACT_MODULES = (
    "fig1_gradient_geometry",
    "fig_sim_convergence",
    "fig_sim_imbalance",
    "fig_sim_density",
    "fig_norm_growth",
    "tab_weight_decay",
    "tab_cut_init",
    "tab_gradscale",
    "fig_imbalance_norms",
    "fig4_norm_confidence",
    "fig_seen_vs_unseen",
)


def load_artifacts() -> dict[str, Artifact]:
    """Import every artifact module and return ``{name: Artifact}`` in registry order."""
    return {name: Artifact.from_module(importlib.import_module(f"reproduce.{name}")) for name in ARTIFACT_MODULES}
