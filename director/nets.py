"""Network building blocks shared by the world model, goal autoencoder and policies.

Conventions (ALGORITHM.md §1): ELU activations, LayerNorm with eps 1e-3, no bias before a
norm, output layers initialised small (variance scaling 0.1). Images are channels-last
uint8 (..., H, W, C) at the interfaces and scaled to [0, 1] inside the encoder.
"""
from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

LN_EPS = 1e-3


def symlog(x: torch.Tensor) -> torch.Tensor:
    return torch.sign(x) * torch.log1p(torch.abs(x))


def symexp(x: torch.Tensor) -> torch.Tensor:
    return torch.sign(x) * torch.expm1(torch.abs(x))


def init_small(layer: nn.Linear, scale: float = 0.1) -> nn.Linear:
    """Variance-scaling init (fan_avg, truncated normal) with a small scale for output layers."""
    if scale == 0:
        nn.init.zeros_(layer.weight)
        if layer.bias is not None:
            nn.init.zeros_(layer.bias)
        return layer
    fan_avg = (layer.in_features + layer.out_features) / 2
    std = math.sqrt(scale / fan_avg) / 0.87962566103423978
    nn.init.trunc_normal_(layer.weight, std=std, a=-2 * std, b=2 * std)
    if layer.bias is not None:
        nn.init.zeros_(layer.bias)
    return layer


class Concat:
    """The concatenation along the last axis of parts that broadcast against each other,
    kept apart: e.g. the worker's input, a state feature (N, T, F) and the goal held over the
    segment (N, 1, D), is (N, T, F + D). An MLP takes it as its input and applies the first
    layer's weight part by part, so a part constant over T is multiplied once, not T times,
    and the (N, T, F + D) tensor is never built. Index it on the leading axes like a tensor
    (a part of size 1 on a sliced axis keeps it); `dense()` builds the tensor."""

    def __init__(self, *parts: torch.Tensor):
        self.parts = parts

    @property
    def shape(self) -> torch.Size:
        lead = torch.broadcast_shapes(*(p.shape[:-1] for p in self.parts))
        return torch.Size((*lead, sum(p.shape[-1] for p in self.parts)))

    @property
    def requires_grad(self) -> bool:
        return any(p.requires_grad for p in self.parts)

    def detach(self) -> "Concat":
        return Concat(*(p.detach() for p in self.parts))

    def __getitem__(self, index: tuple | slice | int) -> "Concat":
        index = index if isinstance(index, tuple) else (index,)
        if any(i is Ellipsis for i in index) or len(index) >= len(self.shape):
            raise IndexError("Concat is indexed on its leading axes only")
        lead = self.shape[:-1]
        def part_index(p: torch.Tensor) -> tuple:
            return tuple((0 if isinstance(i, int) else slice(None)) if p.shape[d] == 1 < lead[d] else i
                         for d, i in enumerate(index))
        return Concat(*(p[part_index(p)] for p in self.parts))

    def dense(self) -> torch.Tensor:
        """The concatenated tensor (..., sum of part sizes)."""
        lead = self.shape[:-1]
        return torch.cat([p.expand(*lead, p.shape[-1]) for p in self.parts], -1)

    @staticmethod
    def cat(items: list["Concat"], dim: int = 0) -> "Concat":
        """Concatenate along a leading axis `dim`, part by part."""
        return Concat(*(torch.cat(parts, dim) for parts in zip(*(c.parts for c in items))))

    def linear(self, layer: nn.Linear) -> torch.Tensor:
        """layer(self.dense()) without building it: the sum of each part times its columns."""
        out, start = None, 0
        for part in self.parts:
            size = part.shape[-1]
            y = F.linear(part, layer.weight[:, start:start + size]).float()
            out, start = (y if out is None else out + y), start + size
        return out if layer.bias is None else out + layer.bias


class DenseNorm(nn.Sequential):
    """Linear (no bias) -> LayerNorm -> ELU; the input may be a `Concat`."""

    def __init__(self, inp: int, out: int):
        super().__init__(nn.Linear(inp, out, bias=False), nn.LayerNorm(out, eps=LN_EPS), nn.ELU())

    def forward(self, x: torch.Tensor | Concat) -> torch.Tensor:
        linear, norm, act = self
        return act(norm(x.linear(linear) if isinstance(x, Concat) else linear(x)))


class MLP(nn.Module):
    """`layers` x DenseNorm of `units`, then a linear output of `out` (small init).

    (..., inp) -> (..., out); `out=None` returns the last hidden layer (..., units). The
    input may be a `Concat` of parts whose sizes add up to `inp`.
    """

    def __init__(self, inp: int, out: int | None, layers: int, units: int, out_scale: float = 0.1):
        super().__init__()
        dims = [inp] + [units] * layers
        self.hidden = nn.Sequential(*[DenseNorm(a, b) for a, b in zip(dims[:-1], dims[1:])])
        self.out = init_small(nn.Linear(dims[-1], out), out_scale) if out is not None else None

    def forward(self, x: torch.Tensor | Concat) -> torch.Tensor:
        x = self.hidden(x)
        if self.out is None:
            return x
        return x.linear(self.out) if isinstance(x, Concat) else self.out(x)


class ChannelNorm(nn.LayerNorm):
    """LayerNorm over the channel axis of a (N, C, H, W) tensor."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)


def _conv_layers(size: int) -> int:
    return {16: 2, 32: 3, 64: 4}[size]


class ConvEncoder(nn.Module):
    """Image (..., H, W, C) uint8 -> embedding (..., out_dim).

    Convolutions with kernel 4, stride 2, no padding, channels d, 2d, 4d, 8d (64 px; fewer
    layers for 32 and 16 px), each followed by LayerNorm and ELU: 64x64 -> 2x2x8d.
    """

    def __init__(self, size: int, channels: int, depth: int):
        super().__init__()
        layers, inp, res = [], channels, size
        for i in range(_conv_layers(size)):
            out = depth * 2 ** i
            layers += [nn.Conv2d(inp, out, 4, 2, bias=False), ChannelNorm(out, eps=LN_EPS), nn.ELU()]
            inp, res = out, (res - 4) // 2 + 1
        self.net = nn.Sequential(*layers)
        self.out_dim = inp * res * res

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        batch = image.shape[:-3]
        # Scale while contiguous, then a channels-last view: the convolutions take it as is.
        x = (image.reshape(-1, *image.shape[-3:]).float() / 255.0).permute(0, 3, 1, 2)
        return self.net(x).reshape(*batch, self.out_dim)


class ConvDecoder(nn.Module):
    """Feature (..., F) -> image mean (..., H, W, C), in [0, 1] for the sigmoid output.

    The feature is reshaped to 1x1xF and upsampled by transposed convolutions with stride 2
    and kernels 5, 5, 6, 6 (64 px; 5, 6, 6 for 32 px; 6, 6 for 16 px), channels 4d, 2d, d, C,
    LayerNorm + ELU on all but the last, then `output`: "sigmoid" (the paper's) or "linear"
    (0.5 + the last layer; not bounded, so readers of images clip it). The first, on a 1x1 input, is one
    matmul with its weight (F, out, k, k) seen as (F, out*k*k): the same values, several
    times faster than a convolution routine on the CPU.
    """

    KERNELS = {64: (5, 5, 6, 6), 32: (5, 6, 6), 16: (6, 6)}

    def __init__(self, feat: int, size: int, channels: int, depth: int, output: str = "sigmoid"):
        super().__init__()
        if output not in ("sigmoid", "linear"):
            raise ValueError(f"output must be 'sigmoid' or 'linear', not {output!r}")
        self.output = output
        kernels = self.KERNELS[size]
        outs = [depth * 2 ** i for i in reversed(range(len(kernels) - 1))] + [channels]
        layers, inp = [], feat
        for i, (k, out) in enumerate(zip(kernels, outs)):
            last = i == len(kernels) - 1
            layers.append(nn.ConvTranspose2d(inp, out, k, 2, bias=last))
            if not last:
                layers += [ChannelNorm(out, eps=LN_EPS), nn.ELU()]
            inp = out
        self.net = nn.Sequential(*layers)
        self.size, self.channels = size, channels

    def forward(self, feat: torch.Tensor) -> torch.Tensor:
        batch = feat.shape[:-1]
        first = self.net[0]
        x = feat.reshape(-1, feat.shape[-1]) @ first.weight.flatten(1)  # no bias: not the last
        x = self.net[1:](x.reshape(-1, *first.weight.shape[1:]))
        x = torch.sigmoid(x) if self.output == "sigmoid" else x + 0.5
        return x.permute(0, 2, 3, 1).reshape(*batch, self.size, self.size, self.channels)


class OneHotDist:
    """Independent categoricals (..., vars, classes) with straight-through samples and
    optional uniform mixing (`unimix`, e.g. 1% for the policies)."""

    def __init__(self, logits: torch.Tensor, unimix: float = 0.0):
        logits = logits.float()
        if unimix > 0:
            probs = F.softmax(logits, -1)
            probs = (1 - unimix) * probs + unimix / logits.shape[-1]
            logits = torch.log(probs)
        self.logits = logits - logits.logsumexp(-1, keepdim=True)
        self.probs = self.logits.exp()

    def sample(self) -> torch.Tensor:
        """One-hot sample with straight-through gradients: sample + probs - sg(probs).

        Inverse-CDF sampling: one uniform number per categorical (not one per class, as
        Gumbel-max needs) and no logarithms. Non-finite logits (from a non-finite batch) give
        a non-finite sample and loss, which the training step then skips, instead of raising."""
        probs = self.probs.detach()
        uniform = torch.rand_like(probs[..., :1])
        index = (probs.cumsum(-1) < uniform).sum(-1, keepdim=True).clamp(max=probs.shape[-1] - 1)
        return _one_hot(index, probs) + self.probs - probs

    def mode(self) -> torch.Tensor:
        onehot = _one_hot(self.logits.detach().argmax(-1, keepdim=True), self.probs)
        return onehot + self.probs - self.probs.detach()

    def log_prob(self, onehot: torch.Tensor) -> torch.Tensor:
        """onehot (..., vars, classes) -> (..., vars): one log-probability per variable."""
        return (onehot * self.logits).sum(-1)

    def entropy(self) -> torch.Tensor:
        return -(self.probs * self.logits).sum(-1)


def clip_straight_through(x: torch.Tensor, low: float = -1.0, high: float = 1.0) -> torch.Tensor:
    """x clipped to [low, high] in value, with the identity's gradient (straight-through), so a
    sampled action stays valid and its out-of-range samples still pass gradients."""
    return x + (x.clamp(low, high) - x).detach()


def _one_hot(index: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """index (..., 1) -> one-hot shaped and typed like `like` (..., C). A comparison with the
    class indices, not F.one_hot: no range check, which compiles into a host assert."""
    return (index == torch.arange(like.shape[-1], device=like.device)).to(like.dtype)


def categorical_kl(lhs_logits: torch.Tensor, rhs_logits: torch.Tensor) -> torch.Tensor:
    """KL(lhs || rhs) per categorical variable: (..., vars, classes) -> (..., vars)."""
    lhs = F.log_softmax(lhs_logits.float(), -1)
    rhs = F.log_softmax(rhs_logits.float(), -1)
    return (lhs.exp() * (lhs - rhs)).sum(-1)


class Adaptive(nn.Module):
    """A coefficient that adapts toward a target (KL scales, entropy bonus).

    `increase_above=True` (KL scales): x1.1 when value > 1.1 * target, /1.1 when
    value < target / 1.1. `increase_above=False` (entropy): x1.1 when value < target / 1.1,
    /1.1 when value > 1.1 * target. The scale is clipped to [low, high].

    Sync-free: `update` works on device tensors and commits only where `applied` is true.
    """

    def __init__(self, init: float, target: float, low: float, high: float,
                 increase_above: bool = True, rate: float = 1.1):
        super().__init__()
        self.target, self.low, self.high, self.rate = target, low, high, rate
        self.increase_above = increase_above
        self.register_buffer("scale", torch.tensor(float(init)))

    def __call__(self) -> torch.Tensor:  # type: ignore[override]
        return self.scale

    @torch.no_grad()
    def update(self, value: torch.Tensor | float, applied: torch.Tensor | bool = True) -> None:
        value = torch.as_tensor(value, dtype=torch.float32, device=self.scale.device)
        above, below = value > self.target * self.rate, value < self.target / self.rate
        if not self.increase_above:
            above, below = below, above
        factor = torch.where(above, self.rate, torch.where(below, 1 / self.rate, 1.0))
        new = (self.scale * factor).clamp(self.low, self.high)
        self.scale.copy_(torch.where(torch.as_tensor(applied, device=new.device), new, self.scale))


class Normalizer(nn.Module):
    """EMA of a quantity's mean and mean-square, for return and advantage normalisation.

    Functional within an update: the loss computes the batch mean and mean-square of x (its
    metrics), `next(...)` the EMA they lead to and `std(*next(...))` the std it uses;
    `update(...)` commits the same values in `after_update`, only where `applied`, so a
    skipped update leaves the EMA bit-identical. No host sync."""

    def __init__(self, decay: float, min_std: float = 0.0):
        super().__init__()
        self.decay, self.min_std = decay, min_std
        self.register_buffer("mean", torch.zeros(()))
        self.register_buffer("sqr", torch.zeros(()))
        self.register_buffer("count", torch.zeros((), dtype=torch.long))

    def next(self, x_mean: torch.Tensor, x_sqr: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """EMA mean and mean-square after a batch with these moments (the first batch sets them)."""
        d = torch.where(self.count > 0, self.decay, 0.0)
        return d * self.mean + (1 - d) * x_mean.detach(), d * self.sqr + (1 - d) * x_sqr.detach()

    @torch.no_grad()
    def update(self, x_mean: torch.Tensor, x_sqr: torch.Tensor, applied: torch.Tensor | bool = True) -> None:
        applied = torch.as_tensor(applied, device=self.mean.device)
        mean, sqr = self.next(x_mean, x_sqr)
        self.mean.copy_(torch.where(applied, mean, self.mean))
        self.sqr.copy_(torch.where(applied, sqr, self.sqr))
        self.count.add_(applied.long())

    def std(self, mean: torch.Tensor | None = None, sqr: torch.Tensor | None = None) -> torch.Tensor:
        """The std of the stored EMA, or of the given mean and mean-square."""
        mean = self.mean if mean is None else mean
        sqr = self.sqr if sqr is None else sqr
        return (sqr - mean ** 2).clamp(min=0).sqrt().clamp(min=self.min_std)


def make_optimizer(module: nn.Module, lr: float, eps: float, weight_decay: float) -> torch.optim.Optimizer:
    """AdamW with decoupled weight decay on weight matrices only (biases, norms, learned
    initial states are skipped).

    The fused implementation: one kernel per step, and it honours `optimizer.found_inf`
    (the flag GradScaler also sets): where it is 1 the step leaves parameters, moments and
    step counts untouched, without a host sync. `skip_step` sets it."""
    decay, no_decay = [], []
    for name, p in module.named_parameters():
        if not p.requires_grad:
            continue
        (decay if p.ndim >= 2 else no_decay).append(p)
    groups = [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.AdamW([g for g in groups if g["params"]], lr=lr, eps=eps, fused=True)


def skip_step(optimizer: torch.optim.Optimizer, skip: torch.Tensor) -> None:
    """Make the next `optimizer.step()` a no-op where the device flag `skip` is true (fused
    AdamW reads `found_inf`; a GradScaler under 16-mixed sets its own and this is overridden)."""
    inner = getattr(optimizer, "optimizer", optimizer)  # a LightningOptimizer wraps the real one
    inner.found_inf = skip.float().reshape(())
