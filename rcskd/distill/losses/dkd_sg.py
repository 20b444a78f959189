"""DKD-SG: distillation through a per-batch sample graph, built with torch-geometric.

Nodes are per-sample vectors (`node: logits`, as in the reference code, or `embedding`, the
pooled feature). Edges carry the cosine similarity of L2-normalised nodes, self-loops removed:
all pairs, or with `knn > 0` each sample's k most similar samples in the *teacher's* graph (the
student's graph uses the same edges, so the two edge-weight vectors align). `propagate > 0`
smooths the nodes over their own graph with parameter-free GCN normalisation before they are
compared, so neighbourhood structure counts in the node term.

L = (1 - cosine(edge weights S, edge weights T)) + node term. The node term compares node
vectors per sample over their features (`node_axis: sample`: 1 - mean_i cos(S_i, T_i)) or, as
the reference code does (`cosine_similarity(x.unsqueeze(0), y.unsqueeze(0))`, util1.py:41), per
feature over the batch (`node_axis: batch`: 1 - mean_d cos(S[:, d], T[:, d])).
A linear adapter (part of the loss) maps student embeddings to the teacher's size.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import torch
from torch import Tensor
from torch.nn import functional as F

from rcskd.config import bounds
from rcskd.distill.losses.base import DistillLoss, Shapes, TermConfig, flat_dim, linear_adapter
from rcskd.distill.outputs import Outputs
from rcskd.registry import LOSSES


def graph_edges(n: int, knn: int = 0, similarity: Tensor | None = None) -> Tensor:
    """edge_index (2, E) without self-loops: all pairs, or each node's `knn` nearest."""
    from torch_geometric.utils import dense_to_sparse, remove_self_loops

    if knn <= 0 or knn >= n - 1 or similarity is None:
        edge_index, _ = dense_to_sparse(
            torch.ones(n, n, device=getattr(similarity, "device", None))
        )
        return remove_self_loops(edge_index)[0]
    masked = similarity.detach().clone()
    masked.fill_diagonal_(float("-inf"))
    neighbours = masked.topk(knn, dim=1).indices  # (n, knn)
    targets = torch.arange(n, device=similarity.device).repeat_interleave(knn)
    return torch.stack([neighbours.flatten(), targets])  # message from neighbour to node


def sample_graph(nodes: Tensor, edge_index: Tensor):
    """A torch-geometric `Data`: normalised nodes, edges, cosine-similarity edge weights."""
    from torch_geometric.data import Data

    x = F.normalize(nodes, dim=1)
    weight = (x[edge_index[0]] * x[edge_index[1]]).sum(1)
    return Data(x=x, edge_index=edge_index, edge_weight=weight, num_nodes=len(x))


def propagate(x: Tensor, edge_index: Tensor, edge_weight: Tensor, steps: int) -> Tensor:
    """`steps` rounds of symmetric-normalised (GCN) averaging; negative similarities count 0."""
    from torch_geometric.nn.conv.gcn_conv import gcn_norm
    from torch_geometric.utils import scatter

    index, weight = gcn_norm(
        edge_index, edge_weight.clamp_min(0.0), num_nodes=len(x), add_self_loops=True
    )
    for _ in range(steps):
        x = scatter(x[index[0]] * weight[:, None], index[1], 0, dim_size=len(x), reduce="sum")
    return x


@dataclass(frozen=True)
class DkdConfig(TermConfig):
    """DKD-SG: its weight (the paper's gamma) and how the sample graph is built."""

    weight: float = field(default=5.0, metadata=bounds(0.0))
    node: Literal["logits", "embedding"] = "logits"
    embed_tap: str = "pool"  # the embedding tap when node = embedding
    knn: int = field(default=0, metadata=bounds(0))  # edges to the k nearest; 0 = all pairs
    propagate: int = field(default=0, metadata=bounds(0))  # parameter-free propagation steps
    node_axis: Literal["sample", "batch"] = "sample"  # batch: the reference code's cosine axis


@LOSSES.register("dkd_sg")
class DKDSGLoss(DistillLoss):
    """Edge term + node term between the student's and the teacher's sample graphs."""

    Config = DkdConfig

    def __init__(
        self,
        node: str = "logits",
        student_dim: int = 0,
        teacher_dim: int = 0,
        knn: int = 0,
        steps: int = 0,
        embed_tap: str = "pool",
        node_axis: str = "sample",
    ) -> None:
        super().__init__()
        self.node, self.knn, self.steps, self.embed_tap = node, knn, steps, embed_tap
        self.node_axis = node_axis
        self.taps = (embed_tap,) if node == "embedding" else ()
        self.adapter = linear_adapter(student_dim, teacher_dim)

    @classmethod
    def from_config(cls, cfg: Any, shapes: Shapes) -> DKDSGLoss:
        if cfg.node == "embedding":
            dims = flat_dim(shapes.student[cfg.embed_tap]), flat_dim(shapes.teacher[cfg.embed_tap])
        else:
            dims = shapes.classes, shapes.classes
        return cls(cfg.node, *dims, cfg.knn, cfg.propagate, cfg.embed_tap, cfg.node_axis)

    def nodes(self, out: Outputs) -> Tensor:
        """Per-sample node vectors (N, D) of one model."""
        return out.logits if self.node == "logits" else out.feature(self.embed_tap).flatten(1)

    def forward(self, s: Outputs, t: Outputs, labels: Tensor) -> Tensor:
        n_s, n_t = self.nodes(s), self.nodes(t)
        n = len(n_t)
        if n < 2:
            # no pairs, no graph: zero, but through the adapter, so that it still receives a
            # (zero) gradient and DDP's reduction finds every parameter on every process
            return 0.0 * self.adapter(n_s).sum()
        t_norm = F.normalize(n_t, dim=1)
        edges = graph_edges(n, self.knn, t_norm @ t_norm.t())
        g_t = sample_graph(n_t, edges)
        g_s = sample_graph(n_s, edges)  # relations of the student's own vectors
        edge_term = 1 - F.cosine_similarity(g_s.edge_weight, g_t.edge_weight, dim=0, eps=1e-8)
        x_s = F.normalize(self.adapter(n_s), dim=1)
        x_t = g_t.x
        if self.steps > 0:
            x_s = propagate(x_s, edges, g_s.edge_weight, self.steps)
            x_t = propagate(x_t, edges, g_t.edge_weight, self.steps)
        axis = 1 if self.node_axis == "sample" else 0
        node_term = 1 - F.cosine_similarity(x_s, x_t, dim=axis, eps=1e-8).mean()
        return edge_term + node_term
