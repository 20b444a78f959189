"""Batch normalisation over every process's share of the batch, for the CPU (gloo).

PyTorch's SyncBatchNorm runs on accelerators only (its kernels have no CPU version). This one
computes the same statistics with plain tensor operations and a differentiable all-reduce: each
process sums its share (sum, sum of squares, count), the sums are added over processes, and the
backward pass all-reduces their gradients, so each process's gradient also carries the effect
its activations had on the other processes' losses through the shared statistics. With
`distributed.sync_batchnorm` on the CPU, data-parallel training then normalises as one process
on the whole batch does.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


class _SumOverProcesses(torch.autograd.Function):
    """all_reduce(sum) whose backward is the all_reduce(sum) of the gradient."""

    @staticmethod
    def forward(ctx, tensor: Tensor) -> Tensor:
        import torch.distributed as dist

        out = tensor.clone()
        dist.all_reduce(out)
        return out

    @staticmethod
    def backward(ctx, grad: Tensor) -> Tensor:
        import torch.distributed as dist

        grad = grad.clone()
        dist.all_reduce(grad)
        return grad


class ProcessGroupBatchNorm2d(nn.BatchNorm2d):
    """BatchNorm2d whose training statistics span all processes of the default group."""

    def forward(self, x: Tensor) -> Tensor:
        import torch.distributed as dist

        if not self.training or not (dist.is_available() and dist.is_initialized()):
            return super().forward(x)
        channels = x.shape[1]
        local = x.float()
        count = torch.full((1,), local.numel() / channels, device=x.device)
        stats = torch.cat([local.sum((0, 2, 3)), (local * local).sum((0, 2, 3)), count])
        stats = _SumOverProcesses.apply(stats)  # summed over processes, gradients too
        total = stats[-1]
        mean = stats[:channels] / total
        var = (stats[channels : 2 * channels] / total - mean * mean).clamp_min(0.0)
        if self.track_running_stats:
            with torch.no_grad():
                self.num_batches_tracked += 1
                momentum = self.momentum
                if momentum is None:  # cumulative moving average
                    momentum = 1.0 / float(self.num_batches_tracked)
                unbiased = var * total / (total - 1).clamp_min(1.0)
                self.running_mean.mul_(1 - momentum).add_(momentum * mean)
                self.running_var.mul_(1 - momentum).add_(momentum * unbiased)
        y = (local - mean[None, :, None, None]) * torch.rsqrt(var + self.eps)[None, :, None, None]
        if self.affine:
            y = y * self.weight[None, :, None, None] + self.bias[None, :, None, None]
        return y.to(x.dtype)
