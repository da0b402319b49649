"""Losses, GradScale and cut-initialization against closed forms and naive implementations."""

import math

import pytest
import torch
import torch.nn.functional as F

from embedding_norms import losses
from embedding_norms.config import RunConfig
from embedding_norms.models import SSLModel
from embedding_norms.norm_control import cut_initialization, gradscale


def _cos_grad(z, y):
    z = z.clone().requires_grad_(True)
    F.cosine_similarity(z, y, dim=-1).sum().backward()
    return z.grad


# ----------------------------------------------------------------- Prop. 3.1 / Cor. 3.3
def test_cosine_gradient_is_orthogonal_with_size_sin_over_norm():
    torch.manual_seed(1)
    z = torch.randn(64, 7, dtype=torch.float64) * torch.rand(64, 1, dtype=torch.float64).mul(10).add(0.1)
    y = torch.randn(64, 7, dtype=torch.float64)
    g = _cos_grad(z, y)
    theta = torch.acos((z * y).sum(1) / (z.norm(dim=1) * y.norm(dim=1)))
    assert torch.allclose((g * z).sum(1), torch.zeros(64, dtype=torch.float64), atol=1e-12)
    assert torch.allclose(g.norm(dim=1), torch.sin(theta) / z.norm(dim=1), rtol=1e-10)
    # closed form of Prop. 3.1: (ŷ - cos θ ẑ) / ||z||
    zh, yh = z / z.norm(dim=1, keepdim=True), y / y.norm(dim=1, keepdim=True)
    assert torch.allclose(g, (yh - torch.cos(theta).unsqueeze(1) * zh) / z.norm(dim=1, keepdim=True), atol=1e-12)


def test_infonce_gradient_scales_inversely_with_norm():
    torch.manual_seed(2)
    z1, z2 = torch.randn(16, 8, dtype=torch.float64), torch.randn(16, 8, dtype=torch.float64)

    def grad_at(scale):
        a = (z1 * scale).requires_grad_(True)
        losses.infonce(a, z2).backward()
        return a.grad

    g1, g5 = grad_at(1.0), grad_at(5.0)
    assert torch.allclose((g1 * z1).sum(1), torch.zeros(16, dtype=torch.float64), atol=1e-12)
    assert torch.allclose(g5, g1 / 5.0, atol=1e-12)


def test_one_sgd_step_grows_the_norm_exactly():
    torch.manual_seed(3)
    z = torch.randn(32, 10, dtype=torch.float64)
    y = torch.randn(32, 10, dtype=torch.float64)
    g = -_cos_grad(z, y)  # gradient of the loss -cos
    gamma = 0.37
    new = z - gamma * g
    lhs = new.norm(dim=1) ** 2
    rhs = z.norm(dim=1) ** 2 + gamma**2 * g.norm(dim=1) ** 2
    assert torch.allclose(lhs, rhs, rtol=1e-12)
    assert (lhs > z.norm(dim=1) ** 2).all()


# ----------------------------------------------------------------- GradScale
@pytest.mark.parametrize("power", [0.0, 1.0, 2.0, -0.5])
def test_gradscale_multiplies_row_gradients_by_norm_power(power):
    torch.manual_seed(4)
    z = torch.randn(12, 6, dtype=torch.float64) * torch.linspace(0.2, 5, 12, dtype=torch.float64).unsqueeze(1)
    w = torch.randn(12, 6, dtype=torch.float64)

    plain = z.clone().requires_grad_(True)
    (F.normalize(plain, dim=1) * w).sum().backward()
    scaled = z.clone().requires_grad_(True)
    out = gradscale(scaled, power)
    assert torch.equal(out.detach(), z)  # forward is the identity
    (F.normalize(out, dim=1) * w).sum().backward()
    expected = plain.grad * z.norm(dim=1, keepdim=True) ** power
    assert torch.allclose(scaled.grad, expected, rtol=1e-12)


# ----------------------------------------------------------------- losses vs naive loops
def _naive_infonce(z1, z2, t):
    a, b = F.normalize(z1, dim=1), F.normalize(z2, dim=1)
    total = 0.0
    for i in range(len(a)):
        s_ii = float(a[i] @ b[i]) / t
        denom = sum(math.exp(float(a[i] @ b[j]) / t) for j in range(len(b)) if j != i)
        total += -s_ii + math.log(denom)
    return total / len(a)


def _naive_nt_xent(z1, z2, t):
    u = F.normalize(torch.cat([z1, z2]), dim=1)
    n = len(z1)
    total = 0.0
    for k in range(2 * n):
        pos = k + n if k < n else k - n
        denom = sum(math.exp(float(u[k] @ u[m]) / t) for m in range(2 * n) if m != k)
        total += -(float(u[k] @ u[pos]) / t - math.log(denom))
    return total / (2 * n)


def _naive_supcon_all(z, labels, t):
    u = F.normalize(z, dim=1)
    vals = []
    for i in range(len(u)):
        pos = [p for p in range(len(u)) if p != i and labels[p] == labels[i]]
        if not pos:
            continue
        denom = math.log(sum(math.exp(float(u[i] @ u[m]) / t) for m in range(len(u)) if m != i))
        vals.append(-sum(float(u[i] @ u[p]) / t - denom for p in pos) / len(pos))
    return sum(vals) / len(vals)


def test_infonce_matches_double_loop():
    torch.manual_seed(5)
    z1, z2 = torch.randn(9, 4, dtype=torch.float64), torch.randn(9, 4, dtype=torch.float64)
    assert float(losses.infonce(z1, z2, 0.5)) == pytest.approx(_naive_infonce(z1, z2, 0.5), rel=1e-10)
    parts = float(losses.attraction(z1, z2, 0.5)) + float(losses.repulsion(z1, z2, 0.5))
    assert parts == pytest.approx(_naive_infonce(z1, z2, 0.5), rel=1e-10)


def test_nt_xent_matches_double_loop():
    torch.manual_seed(6)
    z1, z2 = torch.randn(7, 5, dtype=torch.float64), torch.randn(7, 5, dtype=torch.float64)
    assert float(losses.nt_xent(z1, z2, 0.2)) == pytest.approx(_naive_nt_xent(z1, z2, 0.2), rel=1e-10)


def test_supervised_infonce_all_and_random_partner():
    torch.manual_seed(7)
    z = torch.randn(10, 3, dtype=torch.float64)
    labels = torch.tensor([0, 0, 1, 1, 1, 2, 2, 2, 2, 3])  # class 3 has no partner: skipped
    assert float(losses.supervised_infonce(z, labels, 0.5, "all")) == pytest.approx(
        _naive_supcon_all(z, labels.tolist(), 0.5), rel=1e-10)
    # with exactly one partner per anchor, "random" must equal "all"
    pairs = torch.tensor([0, 0, 1, 1, 2, 2])
    zz = torch.randn(6, 3, dtype=torch.float64)
    g = torch.Generator().manual_seed(0)
    assert float(losses.supervised_infonce(zz, pairs, 0.5, "random", g)) == pytest.approx(
        _naive_supcon_all(zz, pairs.tolist(), 0.5), rel=1e-10)


def test_negative_cosine_value_and_stop_gradient():
    torch.manual_seed(8)
    p1, p2 = torch.randn(5, 4, requires_grad=True), torch.randn(5, 4, requires_grad=True)
    z1, z2 = torch.randn(5, 4, requires_grad=True), torch.randn(5, 4, requires_grad=True)
    loss = losses.negative_cosine(p1, z1, p2, z2)
    expected = -0.5 * (F.cosine_similarity(p1, z2).mean() + F.cosine_similarity(p2, z1).mean())
    assert float(loss.detach()) == pytest.approx(float(expected.detach()), rel=1e-6)
    loss.backward()
    assert z1.grad is None and z2.grad is None  # stop-gradient on the targets
    assert p1.grad is not None and p2.grad is not None


# ----------------------------------------------------------------- models: cut-init, BYOL, SimSiam
def _tiny(method, **extra):
    ov = {"model": {"backbone": "resnet18_narrow", "width": 4, "projector_hidden_dim": 16, "projector_out_dim": 16}}
    if method != "simclr":
        ov["model"]["predictor_hidden_dim"] = 8
    for k, v in extra.items():
        ov.setdefault(k, {}).update(v)
    return RunConfig.load(method, "smoke", ov)


@pytest.mark.parametrize("method", ["simclr", "simsiam", "byol"])
def test_cut_initialization_divides_every_parameter(method):
    torch.manual_seed(0)
    plain = SSLModel(_tiny(method))
    torch.manual_seed(0)
    cut = SSLModel(_tiny(method, norm={"cut_constant": 3.0}))
    names = [n for n, _ in plain.named_parameters()]
    assert any("bn" in n or "stem.1" in n for n in names)  # BatchNorm affine parameters included
    if method == "byol":
        assert any(n.startswith("target.") for n in names)  # BYOL's target included
    for (n, a), (_, b) in zip(plain.named_parameters(), cut.named_parameters()):
        assert torch.allclose(b, a / 3.0), n
    x = torch.rand(16, 3, 32, 32)
    plain.eval(), cut.eval()
    with torch.no_grad():
        assert cut(x).emb.norm(dim=1).mean() < plain(x).emb.norm(dim=1).mean()


#: Parameter-name prefixes each scope must cut, written out by hand per method (not read from CUT_SCOPES).
_SCOPE_PARTS = {
    ("simclr", "projector"): ("projector.",),
    ("simsiam", "projector"): ("projector.", "predictor."),
    ("byol", "projector"): ("projector.", "predictor.", "target.projector."),
    ("simclr", "backbone"): ("backbone.",),
    ("simsiam", "backbone"): ("backbone.",),
    ("byol", "backbone"): ("backbone.", "target.backbone."),
}


@pytest.mark.parametrize("method,scope", sorted(_SCOPE_PARTS))
def test_scoped_cut_touches_only_the_parameters_it_names(method, scope):
    """A model cut with scope ``projector`` (or ``backbone``) has exactly 1/c of the uncut model's
    values (same seed) in the parameters of that part, and exactly the uncut values elsewhere,
    BatchNorm running statistics included."""
    c = 3.0
    torch.manual_seed(0)
    plain = SSLModel(_tiny(method))
    torch.manual_seed(0)
    cut = SSLModel(_tiny(method, norm={"cut_constant": c, "cut_scope": scope}))
    parts = _SCOPE_PARTS[(method, scope)]
    a, b = dict(plain.named_parameters()), dict(cut.named_parameters())
    assert a.keys() == b.keys()
    inside = [n for n in a if n.startswith(parts)]
    outside = [n for n in a if not n.startswith(parts)]
    assert inside and outside
    for n in inside:
        assert torch.equal(b[n], a[n] / c), n
    for n in outside:
        assert torch.equal(b[n], a[n]), n
    for (n, x), (_, y) in zip(plain.named_buffers(), cut.named_buffers()):
        assert torch.equal(x, y), n
    if scope == "projector":  # the initial embedding norm shrinks (train-mode BatchNorm: batch statistics)
        x = torch.rand(16, 3, 32, 32)
        with torch.no_grad():
            assert cut(x).emb.norm(dim=1).mean() < plain(x).emb.norm(dim=1).mean() / c


def test_cut_scope_is_in_the_hash_only_when_it_changes_the_run():
    base = _tiny("simsiam")
    released = base.replace({"norm": {"cut_constant": 3.0}})
    assert base.replace({"norm": {"cut_scope": "projector"}}).hash() == base.hash()     # c = 1: no cut at all
    assert released.replace({"norm": {"cut_scope": "all"}}).hash() == released.hash()    # the default scope
    scoped = released.replace({"norm": {"cut_scope": "projector"}})
    assert scoped.hash() != released.hash() and scoped.norm.cut_scope == "projector"
    assert "cut_scope" in scoped.to_dict()["norm"] and "cut_scope" not in released.to_dict()["norm"]
    from embedding_norms.config import ConfigError

    with pytest.raises(ConfigError, match="cut_scope"):
        base.replace({"norm": {"cut_scope": "head"}})


def test_cut_prefix_that_names_nothing_is_refused():
    with pytest.raises(ValueError, match="name no parameter"):
        cut_initialization(torch.nn.Sequential(torch.nn.Linear(2, 2)), 3.0, ("projector",))


def test_cut_constant_must_be_positive():
    with pytest.raises(ValueError, match="cut constant"):
        cut_initialization(torch.nn.Linear(2, 2), 0.0)


def test_byol_target_gets_no_gradient_and_ema_is_exact():
    torch.manual_seed(0)
    model = SSLModel(_tiny("byol"))
    x1, x2 = torch.rand(8, 3, 32, 32), torch.rand(8, 3, 32, 32)
    loss, _ = model.loss(x1, x2)
    loss.backward()
    assert all(p.grad is None for p in model.target.parameters())
    assert all(p.grad is not None for p in model.predictor.parameters())
    with torch.no_grad():
        for p in model.target.parameters():
            p.fill_(2.0)
        for p in list(model.backbone.parameters()) + list(model.projector.parameters()):
            p.fill_(-1.0)
    model.update_target()
    for p in model.target.parameters():
        assert torch.allclose(p, torch.full_like(p, 0.99 * 2.0 + 0.01 * -1.0))


def test_simsiam_target_branch_is_stopped():
    """The projector output z1 enters the loss twice: through p1 = predictor(z1) and as the
    (stopped) target of p2. Its gradient must equal the gradient of the predictor path alone."""
    torch.manual_seed(0)
    model = SSLModel(_tiny("simsiam"))
    o1, o2 = model(torch.rand(8, 3, 32, 32)), model(torch.rand(8, 3, 32, 32))
    seen = []
    o1.z.register_hook(lambda g: seen.append(g.clone()))
    losses.negative_cosine(o1.p, o1.z, o2.p, o2.z).backward()
    z = o1.z.detach().requires_grad_(True)
    p = model.predictor(z)  # same batch, same BatchNorm statistics -> same p1
    (0.5 * losses.attraction(p, o2.z.detach(), 1.0)).backward()
    assert torch.allclose(seen[0], z.grad, atol=1e-6)
