"""Tests of the simulation library (sim_theory, sim_pairs) against closed forms and hand-computed
values (Section 3). Simulations (b)/(c) are tested in tests/test_sim_classes.py.

Every expected number here is derived by hand or from a closed form written out in the test,
never copied from the code's output.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from embedding_norms import sim_pairs as pairs
from embedding_norms import sim_theory as sim


def closed_form_cosine_gradient(z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Prop. 3.1 written out: ∂cos(z, y)/∂z = (ŷ - cos θ ẑ) / ||z|| (a second implementation)."""
    zn = z.norm(dim=-1, keepdim=True)
    zh, yh = z / zn, y / y.norm(dim=-1, keepdim=True)
    return (yh - (zh * yh).sum(-1, keepdim=True) * zh) / zn

# --------------------------------------------------------------------------- Prop. 3.1


def test_cosine_gradient_hand_example():
    # z = (3, 0), y = (1, 1): θ = 45°, ŷ = (1, 1)/√2, ẑ = (1, 0), cos θ = 1/√2
    # grad = (ŷ - cos θ ẑ)/||z|| = ((1/√2, 1/√2) - (1/√2, 0)) / 3 = (0, 1/(3√2))
    z = torch.tensor([3.0, 0.0], dtype=torch.float64)
    y = torch.tensor([1.0, 1.0], dtype=torch.float64)
    g = sim.cosine_gradient(z, y)
    assert torch.allclose(g, torch.tensor([0.0, 1 / (3 * math.sqrt(2))], dtype=torch.float64), atol=1e-15)
    assert abs(float(g @ z)) < 1e-15                                 # orthogonal to z
    assert float(g.norm()) == pytest.approx(math.sin(math.pi / 4) / 3, rel=1e-14)   # sin θ / ||z||


def test_cosine_gradient_orthogonal_and_size_random():
    gen = torch.Generator().manual_seed(1)
    z = torch.randn(200, 7, generator=gen, dtype=torch.float64) * torch.rand(200, 1, generator=gen, dtype=torch.float64).add(0.05) * 10
    y = torch.randn(200, 7, generator=gen, dtype=torch.float64)
    g = sim.cosine_gradient(z, y)
    zn, yn = z.norm(dim=1), y.norm(dim=1)
    cos = (z * y).sum(1) / (zn * yn)
    sin = torch.sqrt(1 - cos ** 2)
    assert ((g * z).sum(1) / (g.norm(dim=1) * zn)).abs().max() < 1e-12
    assert torch.allclose(g.norm(dim=1), sin / zn, rtol=1e-10, atol=0)
    # the closed form and autograd agree (two implementations)
    assert torch.allclose(closed_form_cosine_gradient(z, y), g, rtol=1e-10, atol=1e-14)


def test_gradient_inversely_proportional_to_norm():
    y = torch.tensor([1.0, 0.0, 0.0], dtype=torch.float64)
    d = torch.tensor([0.6, 0.8, 0.0], dtype=torch.float64)  # θ with cos θ = 0.6, sin θ = 0.8
    for r in (0.1, 1.0, 25.0):
        g = sim.cosine_gradient(r * d, y)
        assert float(g.norm()) == pytest.approx(0.8 / r, rel=1e-12)


def test_gradient_field_matches_closed_form():
    df = sim.cosine_gradient_field([0.0, 2.0], np.linspace(-1, 1, 5), np.linspace(-1, 1, 5), min_norm=0.1)
    assert len(df) == 24  # 25 grid points minus the origin
    assert np.allclose(df.grad_norm, df.sin_over_norm, rtol=1e-10, atol=1e-14)
    assert df.orthogonality.abs().max() < 1e-12
    # the point (1, 0) with y = (0, 2): θ = 90°, gradient ŷ/||z|| = (0, 1)
    row = df[(df.x == 1.0) & (df.y == 0.0)].iloc[0]
    assert (row.gx, row.gy) == pytest.approx((0.0, 1.0), abs=1e-14)


# --------------------------------------------------------------------------- Cor. 3.3


def test_norm_growth_identity_one_step_by_hand():
    # loss -cos(z, y) at z = (3, 0), y = (1, 1): g = -(0, 1/(3√2)); one step with γ = 2:
    # ||z - γ g||² = 9 + 4 · 1/18 = 9 + 2/9 (Cor. 3.3)
    traj = sim.descend_cosine([3.0, 0.0], [1.0, 1.0], lr=2.0, steps=1)
    assert traj["z"][1] == pytest.approx([3.0, 2 / (3 * math.sqrt(2))], abs=1e-14)
    assert traj["norm"][1] ** 2 == pytest.approx(9 + 2 / 9, rel=1e-14)
    z = torch.tensor([3.0, 0.0], dtype=torch.float64)
    g = -sim.cosine_gradient(z, torch.tensor([1.0, 1.0], dtype=torch.float64))
    assert float((z - 2.0 * g).norm() ** 2) == pytest.approx(9 + 2 / 9, rel=1e-14)


def test_norm_growth_identity_along_a_trajectory():
    lr = 0.7
    traj = sim.descend_cosine([-1.0, 0.2, 0.5], [0.3, 1.0, -0.4], lr=lr, steps=12)
    sq = traj["norm"] ** 2
    gsq = (traj["grad"] ** 2).sum(1)
    assert np.allclose(sq[1:], sq[:-1] + lr ** 2 * gsq, rtol=1e-12, atol=0)
    assert (np.diff(traj["norm"]) > 0).all()


# --------------------------------------------------------------------------- Simulation (a)


def test_pair_step_matches_autograd_sgd():
    gen = torch.Generator().manual_seed(2)
    z, p = torch.randn(6, 4, generator=gen, dtype=torch.float64), torch.randn(6, 4, generator=gen, dtype=torch.float64)
    zz, pp = z.clone().requires_grad_(True), p.clone().requires_grad_(True)
    opt = torch.optim.SGD([zz, pp], lr=3.0)
    loss = -torch.nn.functional.cosine_similarity(zz, pp, dim=1).mean()
    loss.backward()
    opt.step()
    z1, p1, _ = pairs.pair_sgd_step(z, p, 3.0)
    assert torch.allclose(z1, zz.detach(), atol=1e-12) and torch.allclose(p1, pp.detach(), atol=1e-12)


def test_one_step_changes_cosine_as_closed_form_predicts():
    # For small γ: z_i turns towards p_i by (γ/n) sin θ / ||z||², p_i towards z_i by (γ/n) sin θ / ||p||²,
    # so Δcos θ_i ≈ sin θ_i · Δθ = (γ/n) sin² θ_i (1/||z_i||² + 1/||p_i||²).
    gen = torch.Generator().manual_seed(3)
    n, lr = 3, 1e-4
    z = torch.randn(n, 5, generator=gen, dtype=torch.float64) * torch.tensor([[0.5], [1.0], [3.0]], dtype=torch.float64)
    p = torch.randn(n, 5, generator=gen, dtype=torch.float64) * torch.tensor([[2.0], [0.7], [1.0]], dtype=torch.float64)
    cos0 = torch.nn.functional.cosine_similarity(z, p, dim=1)
    z1, p1, _ = pairs.pair_sgd_step(z, p, lr)
    cos1 = torch.nn.functional.cosine_similarity(z1, p1, dim=1)
    predicted = (lr / n) * (1 - cos0 ** 2) * (1 / z.norm(dim=1) ** 2 + 1 / p.norm(dim=1) ** 2)
    assert torch.allclose(cos1 - cos0, predicted, rtol=1e-3, atol=0)
    # the same through the simulation loop: one step of steps_to_align moves the mean by the mean of the above
    assert float((cos1 - cos0).mean()) == pytest.approx(float(predicted.mean()), rel=1e-3)


def _orthogonal_pairs(n: int, d: int, norm: float) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(4)
    q, _ = torch.linalg.qr(torch.randn(d, d, generator=gen, dtype=torch.float64))
    idx = torch.arange(n) % (d // 2)
    return norm * q[:, 2 * idx].t(), norm * q[:, 2 * idx + 1].t()  # every pair at exactly θ = π/2


def test_predicted_steps_hand_formula():
    # all pairs at θ0 = π/2: tan(θ0/2) = 1; target tan(θT/2) = sqrt(tol/(2 - tol)); k = 2 lr / (n ρ²)
    n, lr, tol, rho = 20, 10.0, 1e-3, 2.0
    expected = math.log(math.sqrt((2 - tol) / tol)) * n * rho ** 2 / (2 * lr)
    assert sim.predicted_steps(np.zeros(n), rho, rho, lr, n, tol) == pytest.approx(expected, rel=1e-9)
    assert sim.predicted_steps(np.ones(4), 1.0, 1.0, lr, 4, tol) == 0.0
    assert sim.predicted_steps(np.full(4, -1.0), 1.0, 1.0, lr, 4, tol) == math.inf  # θ = π: gradient vanishes


def test_steps_to_converge_scale_with_square_of_norm():
    n, d, lr, tol = 20, 8, 10.0, 1e-3
    norms = [2.0, 4.0, 8.0]
    z = torch.stack([_orthogonal_pairs(n, d, r)[0] for r in norms])
    p = torch.stack([_orthogonal_pairs(n, d, r)[1] for r in norms])
    res = pairs.steps_to_align(z, p, pairs.PairSetup(n=n, d=d, lr=lr, tol=tol))
    assert res.converged.all()
    # closed form (by hand, θ0 = π/2): t = ln(sqrt((2 - tol)/tol)) · n ρ² / (2 lr) = 3.80 ρ² here
    hand = [math.log(math.sqrt((2 - tol) / tol)) * n * r ** 2 / (2 * lr) for r in norms]
    assert np.allclose(res.steps, hand, rtol=0.1)
    assert 1.8 <= sim.fit_power_law(norms, res.steps)["exponent"] <= 2.2
    assert res.steps[1] / res.steps[0] == pytest.approx(4, rel=0.15)


def test_steps_grow_with_initial_angle():
    df = pairs.angle_sweep(pairs.PairSetup(n=30, d=6), [-0.5, 0.0, 0.5, 0.9], seed=0)
    assert df.initial_angle.is_monotonic_increasing
    assert df.steps.is_monotonic_increasing and df.steps.iloc[-1] > df.steps.iloc[1]


def test_pairs_at_pi_never_nan():
    z = torch.tensor([[1.0, 0.0, 0.0]], dtype=torch.float64)
    res = pairs.steps_to_align(z, -z, pairs.PairSetup(n=1, d=3, lr=10.0, tol=1e-3, max_steps=50))
    assert not res.converged[0] and res.steps[0] == 50
    assert np.isfinite(res.final_mean_cos).all() and res.final_mean_cos[0] == pytest.approx(-1.0)


@pytest.mark.parametrize("kwargs, name", [
    (dict(lr=0.0), "lr"),
    (dict(lr=-3.0), "lr"),
    (dict(n=0), "n"),
    (dict(d=0), "d"),
    (dict(tol=0.0), "tol"),
    (dict(tol=1.0), "tol"),
    (dict(tol=2.0), "tol"),
    (dict(max_steps=0), "max_steps"),
])
def test_pair_setup_rejects_invalid_parameters(kwargs, name):
    with pytest.raises(ValueError, match=rf"^{name} must"):
        pairs.PairSetup(**kwargs)


@pytest.mark.parametrize("norms", [[1.0, 0.0], [-1.0], []])
def test_norm_sweep_rejects_invalid_norms_before_compute(norms):
    with pytest.raises(ValueError, match="norm"):
        pairs.norm_sweep(pairs.PairSetup(n=5, d=3), norms)


def test_norm_zero_is_rejected_with_reason():
    with pytest.raises(ValueError, match="undefined"):
        pairs.norm_sweep(pairs.PairSetup(n=3, d=4), [0.0])
    with pytest.raises(ValueError, match="norm 0"):
        pairs.steps_to_align(torch.zeros(2, 3), torch.ones(2, 3), pairs.PairSetup())
    with pytest.raises(ValueError, match="norm"):
        sim.cosine_gradient(torch.zeros(3), torch.ones(3))
    with pytest.raises(ValueError, match="interpolation"):
        pairs.angle_sweep(pairs.PairSetup(n=3, d=4), [1.0])


def test_norm_sweep_pairs_have_the_requested_norm_and_angle_near_pi_over_2():
    df = pairs.norm_sweep(pairs.PairSetup(n=400, d=50, max_steps=1), [0.5, 3.0])
    # random directions in d = 50: cos θ has mean 0 and sd 1/sqrt(50); the mean of 400 is ~N(0, 1/sqrt(20000))
    assert df.initial_mean_cos.abs().max() < 5 / math.sqrt(400 * 50)
    # one step (max_steps=1) changes the norm only by Cor. 3.3's second-order growth: still ≈ the requested norm
    assert df.final_mean_norm.to_numpy() == pytest.approx([0.5, 3.0], rel=0.05)


def test_fits_on_exact_power_law():
    x = np.array([0.5, 1.0, 2.0, 4.0])
    assert sim.fit_power_law(x, 3 * x ** 2)["exponent"] == pytest.approx(2.0, abs=1e-12)
    assert sim.fit_quadratic(x, 3 * x ** 2) == pytest.approx(3.0, rel=1e-12)
