"""The list of artifacts (figures and tables of the paper), in the order of REPORT.md."""

from __future__ import annotations

import importlib

from .common import Artifact

#: Module names under ``reproduce/``; each defines ``ARTIFACT``.
ARTIFACT_MODULES = [
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
]


def load_artifacts() -> dict[str, Artifact]:
    """Import every artifact module and return ``{name: Artifact}`` in registry order."""
    out: dict[str, Artifact] = {}
    for mod in ARTIFACT_MODULES:
        art = importlib.import_module(f"reproduce.{mod}").ARTIFACT
        if art.name != mod:
            raise RuntimeError(f"reproduce/{mod}.py defines ARTIFACT named {art.name!r}; names must match the file")
        out[art.name] = art
    return out
