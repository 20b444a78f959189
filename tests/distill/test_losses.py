"""Golden values: every distillation loss on fixed small tensors, against an independent
NumPy computation written from the papers' formulas (not from the code under test)."""

import numpy as np
import pytest
import torch

from rcskd.distill import Outputs
from rcskd.distill.losses.at import AttentionTransferLoss
from rcskd.distill.losses.decoupled_kd import DecoupledKDLoss
from rcskd.distill.losses.dist import DISTLoss
from rcskd.distill.losses.dkd_sg import DKDSGLoss, graph_edges, propagate
from rcskd.distill.losses.fitnet import FitNetLoss
from rcskd.distill.losses.kd import KDLoss
from rcskd.distill.losses.rkd import RelationalKDLoss
from rcskd.distill.losses.sp import SimilarityPreservingLoss
from rcskd.distill.losses.tkd_ca import (
    TKDCALoss,
    corrective_attention,
    effective_attention,
    weighted_position_distance,
)
from rcskd.registry import LOSSES

G = torch.Generator().manual_seed(7)
S_LOGITS = torch.randn(5, 4, generator=G, dtype=torch.float64)
T_LOGITS = torch.randn(5, 4, generator=G, dtype=torch.float64) * 2
LABELS = torch.tensor([0, 3, 1, 2, 3])
F_S = torch.rand(5, 3, 4, 4, generator=G, dtype=torch.float64)
F_T = torch.rand(5, 3, 4, 4, generator=G, dtype=torch.float64)
GRAD = torch.randn(5, 3, 4, 4, generator=G, dtype=torch.float64)
E_S = torch.randn(5, 6, generator=G, dtype=torch.float64)
E_T = torch.randn(5, 8, generator=G, dtype=torch.float64)


def outs(logits, feats=None, grads=None):
    return Outputs(logits, feats or {}, grads or {})


def np_softmax(x, axis=-1):
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def np_cos(a, b):
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


def huber(d):  # smooth L1 with beta = 1
    d = np.abs(d)
    return np.where(d < 1, 0.5 * d**2, d - 0.5)


def test_every_method_is_registered_by_name():
    names = {"kd", "fitnet", "at", "sp", "rkd", "dist", "decoupled_kd", "tkd_ca", "dkd_sg"}
    assert names <= set(LOSSES.names())


def test_kd_golden_value():
    T = 4.0
    s, t = S_LOGITS.numpy() / T, T_LOGITS.numpy() / T
    p_s, p_t = np_softmax(s), np_softmax(t)
    expected = np.mean(np.sum(p_t * (np.log(p_t) - np.log(p_s)), axis=1)) * T * T
    got = KDLoss(T)(outs(S_LOGITS), outs(T_LOGITS), LABELS)
    assert got.item() == pytest.approx(expected, rel=1e-9)


def test_decoupled_kd_golden_value():
    T, alpha, beta = 4.0, 1.0, 8.0
    tckd = nckd = 0.0
    for i, y in enumerate(LABELS.tolist()):
        p_s, p_t = np_softmax(S_LOGITS[i].numpy() / T), np_softmax(T_LOGITS[i].numpy() / T)
        b_s, b_t = np.array([p_s[y], 1 - p_s[y]]), np.array([p_t[y], 1 - p_t[y]])
        tckd += np.sum(b_t * np.log(b_t / b_s))
        keep = [k for k in range(4) if k != y]  # the target class removed, renormalised
        q_s, q_t = p_s[keep] / p_s[keep].sum(), p_t[keep] / p_t[keep].sum()
        nckd += np.sum(q_t * np.log(q_t / q_s))
    expected = (alpha * tckd + beta * nckd) / 5 * T * T
    got = DecoupledKDLoss(alpha, beta, T)(outs(S_LOGITS), outs(T_LOGITS), LABELS)
    assert got.item() == pytest.approx(expected, rel=1e-6)


def test_fitnet_golden_value_with_a_known_regressor():
    loss = FitNetLoss("stage3", 3, 2).double().eval()
    w = torch.tensor([[1.0, -2.0, 0.5], [0.0, 1.0, 3.0]], dtype=torch.float64)
    loss.regressor[0].weight.data = w[:, :, None, None]
    f_t = F_T[:, :2]
    # eval-mode BN with fresh statistics divides by sqrt(1 + eps)
    reg = np.einsum("oc,nchw->nohw", w.numpy(), F_S.numpy()) / np.sqrt(1 + 1e-5)
    expected = np.mean((reg - f_t.numpy()) ** 2)
    got = loss(outs(S_LOGITS, {"stage3": F_S}), outs(T_LOGITS, {"stage3": f_t}), LABELS)
    assert got.item() == pytest.approx(expected, rel=1e-9)


def test_attention_transfer_golden_value():
    def att(f):
        a = (f**2).mean(axis=1).reshape(len(f), -1)
        return a / np.linalg.norm(a, axis=1, keepdims=True)

    expected = np.mean((att(F_S.numpy()) - att(F_T.numpy())) ** 2) * 2  # two identical taps
    feats_s, feats_t = {"a": F_S, "b": F_S}, {"a": F_T, "b": F_T}
    got = AttentionTransferLoss(["a", "b"])(
        outs(S_LOGITS, feats_s), outs(T_LOGITS, feats_t), LABELS
    )
    assert got.item() == pytest.approx(expected, rel=1e-9)


def test_similarity_preserving_golden_value():
    def gram(f):
        x = f.reshape(len(f), -1)
        g = x @ x.T
        return g / np.linalg.norm(g, axis=1, keepdims=True)

    s, t = F_S.numpy(), F_T[:, :2].numpy()  # channel counts may differ
    expected = np.sum((gram(s) - gram(t)) ** 2) / 25
    got = SimilarityPreservingLoss("x")(
        outs(S_LOGITS, {"x": F_S}), outs(T_LOGITS, {"x": F_T[:, :2]}), LABELS
    )
    assert got.item() == pytest.approx(expected, rel=1e-9)


def test_rkd_golden_value_from_explicit_pairs_and_triplets():
    def distances(e):
        n = len(e)
        d = np.array([[np.linalg.norm(e[i] - e[j]) for j in range(n)] for i in range(n)])
        return d / d[~np.eye(n, dtype=bool)].mean()

    def angles(e):
        n, out = len(e), []
        for i in range(n):
            for j in range(n):
                for k in range(n):
                    u, v = e[j] - e[i], e[k] - e[i]
                    nu, nv = np.linalg.norm(u), np.linalg.norm(v)
                    out.append(0.0 if nu == 0 or nv == 0 else u @ v / (nu * nv))
        return np.array(out)

    s, t = E_S.numpy(), E_T.numpy()
    expected = (
        25 * huber(distances(s) - distances(t)).mean() + 50 * huber(angles(s) - angles(t)).mean()
    )
    got = RelationalKDLoss("pool", 25.0, 50.0)(
        outs(S_LOGITS, {"pool": E_S}), outs(T_LOGITS, {"pool": E_T}), LABELS
    )
    assert got.item() == pytest.approx(expected, rel=1e-6)


def test_dist_golden_value_with_numpy_corrcoef():
    tau, beta, gamma = 4.0, 2.0, 3.0
    y_s, y_t = np_softmax(S_LOGITS.numpy() / tau), np_softmax(T_LOGITS.numpy() / tau)
    inter = 1 - np.mean([np.corrcoef(y_s[i], y_t[i])[0, 1] for i in range(5)])
    intra = 1 - np.mean([np.corrcoef(y_s[:, c], y_t[:, c])[0, 1] for c in range(4)])
    expected = tau**2 * (beta * inter + gamma * intra)
    got = DISTLoss(beta, gamma, tau)(outs(S_LOGITS), outs(T_LOGITS), LABELS)
    assert got.item() == pytest.approx(expected, rel=1e-6)


def np_corrective_attention(f, g, eps=1e-6):
    n, c, h, w = f.shape
    out = np.empty_like(f)
    for i in range(n):
        wts = g[i].reshape(c, -1).mean(1)
        wts = np_softmax(np.exp(2 * np_softmax(wts)))
        f1 = f[i] * wts[:, None, None]
        flat = f1.reshape(c, -1)
        ch = 1 / (1 + np.exp(-(flat.std(1) / (flat.mean(1) + eps))))
        a = np.abs(f1).mean(0).reshape(-1)
        sp = np_softmax(a / np.linalg.norm(a)).reshape(h, w)
        out[i] = f1 * ch[:, None, None] * sp[None]
    return out


def test_corrective_attention_follows_the_method_step_by_step():
    expected = np_corrective_attention(F_T.numpy(), GRAD.numpy())
    got = corrective_attention(F_T, GRAD)
    np.testing.assert_allclose(got.numpy(), expected, rtol=1e-9)


def test_tkd_ca_golden_value_with_equal_channels():
    f2 = np_corrective_attention(F_T.numpy(), GRAD.numpy())
    s = F_S.numpy()
    cos = [
        np_cos(s[i, :, y, x], f2[i, :, y, x]) for i in range(5) for y in range(4) for x in range(4)
    ]
    expected = 1 - np.mean(cos)
    loss = TKDCALoss({"stage4": 1.0}, {"stage4": 3}, {"stage4": 3})  # identity adapter
    got = loss(
        outs(S_LOGITS, {"stage4": F_S}), outs(T_LOGITS, {"stage4": F_T}, {"stage4": GRAD}), LABELS
    )
    assert got.item() == pytest.approx(expected, rel=1e-9)
    # the student reproducing F2 exactly costs nothing; its opposite costs 2
    f2_t = torch.from_numpy(f2)
    same = loss(
        outs(S_LOGITS, {"stage4": f2_t}), outs(T_LOGITS, {"stage4": F_T}, {"stage4": GRAD}), LABELS
    )
    opposite = loss(
        outs(S_LOGITS, {"stage4": -f2_t}), outs(T_LOGITS, {"stage4": F_T}, {"stage4": GRAD}), LABELS
    )
    assert same.item() == pytest.approx(0.0, abs=1e-12)
    assert opposite.item() == pytest.approx(2.0, abs=1e-12)


def test_tkd_ca_weights_several_taps():
    loss = TKDCALoss({"a": 0.5, "b": 2.0}, {"a": 3, "b": 3}, {"a": 3, "b": 3})
    one = TKDCALoss({"a": 1.0}, {"a": 3}, {"a": 3})
    s = outs(S_LOGITS, {"a": F_S, "b": F_S})
    t = outs(T_LOGITS, {"a": F_T, "b": F_T}, {"a": GRAD, "b": GRAD})
    assert loss(s, t, LABELS).item() == pytest.approx(2.5 * one(s, t, LABELS).item(), rel=1e-12)


def test_dkd_sg_golden_value_on_logit_nodes():
    s, t = S_LOGITS.numpy(), T_LOGITS.numpy()
    ns = s / np.linalg.norm(s, axis=1, keepdims=True)
    nt = t / np.linalg.norm(t, axis=1, keepdims=True)
    off = ~np.eye(5, dtype=bool)  # self-loops removed
    edge_s, edge_t = (ns @ ns.T)[off], (nt @ nt.T)[off]
    expected = (1 - np_cos(edge_s, edge_t)) + (
        1 - np.mean([np_cos(ns[i], nt[i]) for i in range(5)])
    )
    got = DKDSGLoss("logits", 4, 4)(outs(S_LOGITS), outs(T_LOGITS), LABELS)
    assert got.item() == pytest.approx(expected, rel=1e-9)


def test_dkd_sg_knn_edges_come_from_the_teacher_graph():
    nt = torch.nn.functional.normalize(T_LOGITS, dim=1)
    sim = nt @ nt.t()
    edges = graph_edges(5, 2, sim)
    assert edges.shape == (2, 10)
    assert not (edges[0] == edges[1]).any()  # no self-loops
    for node in range(5):
        sources = sorted(edges[0][edges[1] == node].tolist())
        row = sim[node].clone()
        row[node] = -2
        assert sources == sorted(row.topk(2).indices.tolist())
    assert graph_edges(5, 0, sim).shape == (2, 20)  # all ordered pairs


def test_propagation_is_symmetric_normalised_averaging():
    x = E_T
    edges = graph_edges(5, 0, None)
    weight = torch.rand(20, generator=G, dtype=torch.float64)
    a = np.zeros((5, 5))
    for (j, i), w in zip(edges.t().tolist(), weight.tolist(), strict=True):
        a[i, j] = w
    a += np.eye(5)
    d = a.sum(1)
    expected = (a / np.sqrt(d[:, None] * d[None, :])) @ x.numpy()
    got = propagate(x, edges, weight, 1)
    np.testing.assert_allclose(got.numpy(), expected, rtol=1e-9)


def test_dkd_sg_embedding_nodes_go_through_an_adapter():
    loss = DKDSGLoss("embedding", 6, 8, embed_tap="pool").double()
    s, t = outs(S_LOGITS, {"pool": E_S}), outs(T_LOGITS, {"pool": E_T})
    value = loss(s, t, LABELS)
    value.backward()
    assert loss.adapter.weight.grad is not None and loss.adapter.weight.grad.abs().sum() > 0
    assert 0 <= value.item() <= 4


def np_effective(f, g, kappa=1.0, eps=1e-6):
    """The effective TKD-CA weights, sample by sample in NumPy."""
    n, c, h, w = f.shape
    alphas, betas, spatials = [], [], []
    for i in range(n):
        gm = g[i].reshape(c, -1).mean(1)
        z = (gm - gm.mean()) / (gm.std() + eps)
        alpha = c * np_softmax(kappa * z)
        f1 = f[i] * alpha[:, None, None]
        flat = f1.reshape(c, -1)
        cv = flat.std(1) / (np.abs(flat.mean(1)) + eps)
        beta = 1 / (1 + np.exp(-kappa * (cv - cv.mean()) / (cv.std() + eps)))
        a = np.abs(f1).mean(0).reshape(-1)
        za = (a - a.mean()) / (a.std() + eps)
        alphas.append(alpha), betas.append(beta), spatials.append(np_softmax(kappa * za))
    return np.array(alphas), np.array(betas), np.array(spatials)


def test_effective_tkd_ca_golden_value():
    alpha, beta, spatial = np_effective(F_T.numpy(), GRAD.numpy(), kappa=2.0)
    got = effective_attention(F_T, GRAD, kappa=2.0)
    for mine, theirs in zip(got, (alpha, beta, spatial), strict=True):
        np.testing.assert_allclose(mine.numpy(), theirs, rtol=1e-9)
    np.testing.assert_allclose(alpha.mean(1), 1.0)  # C * softmax: mean weight 1
    w = alpha * beta
    s, t = F_S.numpy(), F_T.numpy()
    expected = np.mean([
        sum(spatial[i, y * 4 + x] * (1 - np_cos(w[i] * s[i, :, y, x], w[i] * t[i, :, y, x]))
            for y in range(4) for x in range(4))
        for i in range(5)
    ])  # fmt: skip
    loss = TKDCALoss({"stage4": 1.0}, {"stage4": 3}, {"stage4": 3}, variant="effective",
                     kappa=2.0)  # fmt: skip
    value = loss(
        outs(S_LOGITS, {"stage4": F_S}), outs(T_LOGITS, {"stage4": F_T}, {"stage4": GRAD}), LABELS
    )
    assert value.item() == pytest.approx(expected, rel=1e-9)


def test_every_part_of_effective_tkd_ca_steers_the_student_gradient():
    """Removing alpha, beta or the spatial weights turns the gradient w.r.t. the student's
    feature (cosine < 0.99): each reaches the loss."""
    g = torch.Generator().manual_seed(3)
    teacher = torch.relu(torch.randn(4, 32, 8, 8, generator=g, dtype=torch.float64))
    grad = torch.randn(4, 32, 8, 8, generator=g, dtype=torch.float64)
    student = torch.relu(torch.randn(4, 32, 8, 8, generator=g, dtype=torch.float64))
    alpha, beta, spatial = effective_attention(teacher, grad)

    def direction(w, s):
        x = student.clone().requires_grad_(True)
        weighted_position_distance(x, teacher, w, s).backward()
        return x.grad.flatten()

    full = direction(alpha * beta, spatial)
    uniform = torch.full_like(spatial, 1 / spatial.shape[1])
    for name, w, s in (("alpha", beta, spatial), ("beta", alpha, spatial),
                       ("s", alpha * beta, uniform)):  # fmt: skip
        cos = torch.nn.functional.cosine_similarity(full, direction(w, s), dim=0)
        assert cos < 0.99, f"removing {name}: cosine {cos:.4f}"


def test_reference_tkd_ca_spatial_factor_is_inert_as_documented():
    """The reference formula's spatial weight is one positive factor per position, which a
    per-position cosine ignores (the reason for the effective variant)."""
    f1 = F_T * torch.rand(5, 3, 1, 1, generator=G, dtype=torch.float64)
    positive = torch.rand(5, 1, 4, 4, generator=G, dtype=torch.float64) + 0.1
    from rcskd.distill.losses.tkd_ca import channel_cosine_distance

    assert channel_cosine_distance(F_S, f1 * positive).item() == pytest.approx(
        channel_cosine_distance(F_S, f1).item(), rel=1e-12
    )
    wide = torch.randn(2, 256, 4, 4, generator=G, dtype=torch.float64) * 1e-3
    from rcskd.distill.losses.tkd_ca import enhanced_channel_weights

    weights = enhanced_channel_weights(wide)
    assert float(weights.max() / weights.min()) < 1.001  # ~1/C each: no channel stands out


@pytest.mark.parametrize("axis", ["sample", "batch"])
def test_dkd_sg_node_term_on_either_axis(axis):
    s, t = S_LOGITS.numpy(), T_LOGITS.numpy()
    ns = s / np.linalg.norm(s, axis=1, keepdims=True)
    nt = t / np.linalg.norm(t, axis=1, keepdims=True)
    off = ~np.eye(5, dtype=bool)
    edge_term = 1 - np_cos((ns @ ns.T)[off], (nt @ nt.T)[off])
    if axis == "sample":  # one cosine per sample, over its classes
        node_term = 1 - np.mean([np_cos(ns[i], nt[i]) for i in range(5)])
    else:  # the reference: one cosine per class, over the batch
        node_term = 1 - np.mean([np_cos(ns[:, d], nt[:, d]) for d in range(4)])
    got = DKDSGLoss("logits", 4, 4, node_axis=axis)(outs(S_LOGITS), outs(T_LOGITS), LABELS)
    assert got.item() == pytest.approx(edge_term + node_term, rel=1e-9)
