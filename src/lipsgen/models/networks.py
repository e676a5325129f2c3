"""Backbones: a time-conditioned vector field on per-particle 3-vectors (B, N, 3) -> (B, N, 3).

``MLPBackbone`` sees the flattened event (particles are labelled); ``TransformerBackbone`` treats
particles as tokens and is exactly permutation-equivariant (unlabelled particles). Attention is
written out with plain tensor ops so that double backward (needed by implicit score matching)
works on every device. Output layers start at zero: an untrained model is the reference field.

With ``pair_features`` both also see the opening angle of every pair of particles on a log scale,
``log sin^2(theta_ij / 2)``: the MLP as extra inputs, the transformer as a learned attention bias.
In q- and z-space the directions are those of the massless q's, so this is the collinear variable
of the event up to the particles' scales (y_ij = |q_i||q_j| sin^2(theta_ij/2) * 2 / M^2); singular
targets spread it over decades, which raw directions show only as tiny differences.

With ``event_momenta`` (a map from the model's states to massless 3-momenta: the identity in q-space,
``z_to_q`` in z-space) both also see the event's Lorentz invariants: ``log y_ij`` with
``y_ij = 2 q_i.q_j / Q^2`` and the energy fractions ``x_k = sum_j y_kj`` (``Q = sum_i q_i``). The
RAMBO map is a boost and a rescaling, so these are exactly the y_ij and x_k = 2 E_k / sqrt_s of the
event the state decodes to: they locate the state on phase space whatever its fibre coordinates,
and a target's density is a function of them alone (docs/design.md, "Tails and edges").
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor, nn

__all__ = ["TimeEmbedding", "MLPBackbone", "TransformerBackbone", "token_features", "pair_log_angles",
           "event_invariants", "N_TOKEN_FEATURES", "EventMomenta"]

# Maps states (B, N, 3) to massless 3-momenta (B, N, 3) with the same Lorentz invariants as the
# decoded event (up to one common scale).
EventMomenta = Callable[[Tensor], Tensor]

N_TOKEN_FEATURES = 7
# sin^2(theta/2) below this is treated as this (float32 resolves directions to ~1e-7).
_MIN_SIN2_HALF_ANGLE = 1e-12


def token_features(x: Tensor) -> Tensor:
    """Per-particle features (x, x/|x|, log|x|) of shape (B, N, 7) from x (B, N, 3)."""
    r = torch.linalg.vector_norm(x, dim=-1, keepdim=True).clamp(min=1e-12)
    return torch.cat([x, x / r, torch.log(r)], dim=-1)


def _norms_and_sin2_half_angles(x: Tensor, min_norm: float) -> tuple[Tensor, Tensor]:
    """|x_i| (B, N) and ``sin^2(theta_ij / 2)`` (B, N, N) between the directions of x (B, N, 3),
    computed as ``|n_i - n_j|^2 / 4``, which keeps small angles accurate."""
    r = torch.linalg.vector_norm(x, dim=-1, keepdim=True).clamp(min=min_norm)
    n = x / r
    return r.squeeze(-1), (n.unsqueeze(2) - n.unsqueeze(1)).square().sum(-1) / 4


def _log_off_diagonal(pairs: Tensor) -> Tensor:
    """log of pair values (B, N, N), floored at ``_MIN_SIN2_HALF_ANGLE``, zero on the diagonal."""
    eye = torch.eye(pairs.shape[1], dtype=torch.bool, device=pairs.device)
    return torch.log(pairs.clamp(min=_MIN_SIN2_HALF_ANGLE)).masked_fill(eye, 0.0)


def pair_log_angles(x: Tensor) -> Tensor:
    """``log sin^2(theta_ij / 2)`` between the directions of x (B, N, 3), shape (B, N, N), zero on
    the diagonal."""
    return _log_off_diagonal(_norms_and_sin2_half_angles(x, 1e-12)[1])


def event_invariants(q: Tensor) -> tuple[Tensor, Tensor]:
    """``(log y_ij (B, N, N), x_k (B, N))`` of massless 3-momenta q (B, N, 3): ``y_ij = 2 q_i.q_j / Q^2``
    (zero on the diagonal of the log), ``x_k = sum_j y_kj`` (energy fraction of particle k in the
    CM frame, in [0, 1]). ``2 q_i.q_j = 4 |q_i| |q_j| sin^2(theta_ij / 2)`` keeps nearly collinear
    pairs accurate; float64."""
    r, sin2 = _norms_and_sin2_half_angles(q.double(), 1e-300)
    two_dot = 4 * r.unsqueeze(2) * r.unsqueeze(1) * sin2
    mass2 = two_dot.sum(dim=(1, 2), keepdim=True) / 2  # Q^2 = sum over pairs i < j of 2 q_i.q_j
    y = two_dot / mass2.clamp(min=1e-300)
    return _log_off_diagonal(y), y.sum(-1)


class TimeEmbedding(nn.Module):
    """Sinusoidal embedding of t in [0, 1] (B,) -> (B, dim), followed by a small MLP."""

    def __init__(self, dim: int = 64) -> None:
        super().__init__()
        if dim % 2:
            raise ValueError(f"time embedding dimension must be even, got {dim}")
        self.dim = dim
        self.mlp = nn.Sequential(nn.Linear(dim, dim), nn.SiLU(), nn.Linear(dim, dim))

    def forward(self, t: Tensor) -> Tensor:
        half = self.dim // 2
        freqs = torch.exp(-math.log(10_000.0) * torch.arange(half, device=t.device, dtype=t.dtype) / half)
        angles = 1000.0 * t.unsqueeze(-1) * freqs
        return self.mlp(torch.cat([angles.sin(), angles.cos()], dim=-1))


class MLPBackbone(nn.Module):
    """MLP on the flattened event features and the time embedding (reference: 4 x 256 SiLU)."""

    def __init__(self, n_particles: int, width: int = 256, depth: int = 4, time_dim: int = 64,
                 pair_features: bool = True, event_momenta: EventMomenta | None = None) -> None:
        super().__init__()
        self.n_particles = n_particles
        self.pair_features = pair_features
        self.event_momenta = event_momenta
        self.time = TimeEmbedding(time_dim)
        rows, cols = torch.triu_indices(n_particles, n_particles, offset=1)
        self._pairs: Tensor
        self.register_buffer("_pairs", rows * n_particles + cols, persistent=False)
        layers: list[nn.Module] = []
        size = (n_particles * N_TOKEN_FEATURES + time_dim + (len(rows) if pair_features else 0)
                + (len(rows) + n_particles if event_momenta is not None else 0))
        for _ in range(depth):
            layers += [nn.Linear(size, width), nn.SiLU()]
            size = width
        self.hidden = nn.Sequential(*layers)
        self.out = _zero_linear(size, n_particles * 3)

    def forward(self, x: Tensor, t: Tensor) -> Tensor:
        features = [token_features(x).flatten(1), self.time(t)]
        if self.pair_features:
            features.append(pair_log_angles(x).flatten(1)[:, self._pairs])
        if self.event_momenta is not None:
            log_y, fractions = event_invariants(self.event_momenta(x))
            features += [log_y.flatten(1)[:, self._pairs].to(x.dtype), fractions.to(x.dtype)]
        hidden = self.hidden(torch.cat(features, dim=-1))
        return self.out(hidden).view_as(x)


_PAIR_EMBEDDING = 16


def _zero_linear(n_in: int, n_out: int) -> nn.Linear:
    """A linear layer that outputs zero until trained: outputs and corrections that start the
    network as the reference field."""
    layer = nn.Linear(n_in, n_out)
    nn.init.zeros_(layer.weight)
    nn.init.zeros_(layer.bias)
    return layer


def _attention_scores(q: Tensor, k: Tensor, pair_bias: nn.Module | None, pairs: Tensor | None) -> Tensor:
    """Scaled dot products of queries and keys (B, N, H, d) -> (B, H, N, N), plus the per-head bias
    of the embedded pairs (B, N, N, _PAIR_EMBEDDING) when there is one."""
    scores = torch.einsum("bihd,bjhd->bhij", q, k) / math.sqrt(q.shape[-1])
    if pair_bias is not None:
        scores = scores + pair_bias(pairs).permute(0, 3, 1, 2)
    return scores


def _softmax_last(scores: Tensor) -> Tensor:
    """Softmax over the last dimension (entries of -inf get weight 0; a row needs one finite entry).
    Written out because torch's CPU kernel is slow on rows of a few particles: about half its time,
    forward and backward, on (256, 4, 10, 10) (docs/benchmarks.md, "The transformer's step")."""
    exp = (scores - scores.amax(dim=-1, keepdim=True).detach()).exp()
    return exp / exp.sum(dim=-1, keepdim=True)


class _Block(nn.Module):
    """Pre-LN transformer block with the time embedding added to its input."""

    def __init__(self, width: int, heads: int, time_dim: int, pair_features: bool) -> None:
        super().__init__()
        if width % heads:
            raise ValueError(f"width {width} is not divisible by {heads} heads")
        self.heads = heads
        self.time = nn.Linear(time_dim, width)
        self.pair_bias = nn.Linear(_PAIR_EMBEDDING, heads) if pair_features else None
        self.norm1 = nn.LayerNorm(width)
        self.qkv = nn.Linear(width, 3 * width)
        self.proj = nn.Linear(width, width)
        self.norm2 = nn.LayerNorm(width)
        self.ff = nn.Sequential(nn.Linear(width, 4 * width), nn.SiLU(), nn.Linear(4 * width, width))

    def forward(self, h: Tensor, temb: Tensor, pairs: Tensor | None) -> Tensor:
        """h (B, N, width), temb (B, time_dim), pairs (B, N, N, _PAIR_EMBEDDING) or None."""
        h = h + self.time(temb).unsqueeze(1)
        b, n, w = h.shape
        q, k, v = self.qkv(self.norm1(h)).view(b, n, 3, self.heads, w // self.heads).unbind(2)
        scores = _attention_scores(q, k, self.pair_bias, pairs)
        attended = torch.einsum("bhij,bjhd->bihd", _softmax_last(scores), v).reshape(b, n, w)
        h = h + self.proj(attended)
        return h + self.ff(self.norm2(h))


class _RelativeOutput(nn.Module):
    """An output built from the particles' relative vectors. Per head, attention a_ij over the other
    particles j, and four vectors for particle i: the offset ``sum_j a_ij (x_j - x_i)``, the turn
    ``|x_i| sum_j a_ij (n_j - n_i)`` (n = x/|x|), the radial step ``n_i sum_j a_ij (|x_j| - |x_i|)`` and
    its own direction n_i, each scaled by a coefficient read from particle i's token (EGNN's coordinate
    update, Satorras et al., arXiv:2102.09844, with the turn and the radial step as its angular and
    radial parts). A token-wise linear output has to write the small offset between two nearly
    collinear particles, or a step along a particle's own direction, from normalised features; these
    vectors carry them at their own scale. Starts at zero."""

    def __init__(self, width: int, heads: int, pair_bias: bool) -> None:
        super().__init__()
        self.heads = heads
        self.qk = nn.Linear(width, 2 * width)
        self.pair_bias = nn.Linear(_PAIR_EMBEDDING, heads) if pair_bias else None
        self.coefficients = _zero_linear(width, 4 * heads)

    def forward(self, h: Tensor, x: Tensor, pairs: Tensor | None) -> Tensor:
        """h (B, N, width), x (B, N, 3), pairs (B, N, N, _PAIR_EMBEDDING) or None -> (B, N, 3)."""
        b, n, w = h.shape
        q, k = self.qk(h).view(b, n, 2, self.heads, w // self.heads).unbind(2)
        scores = _attention_scores(q, k, self.pair_bias, pairs)
        eye = torch.eye(n, dtype=torch.bool, device=h.device)
        weights = _softmax_last(scores.masked_fill(eye, float("-inf")))  # (B, H, N, N)
        r = torch.linalg.vector_norm(x, dim=-1, keepdim=True).clamp(min=1e-12)  # (B, N, 1)
        directions = x / r
        own = directions.unsqueeze(1)  # (B, 1, N, 3), broadcast over the heads

        # the attention-weighted means of the other particles' x, n and |x|, (B, H, N, 3 + 3 + 1), in one product
        means = torch.einsum("bhij,bjc->bhic", weights, torch.cat([x, directions, r], dim=-1))
        offsets = means[..., :3] - x.unsqueeze(1)
        turns = r.unsqueeze(1) * (means[..., 3:6] - own)
        radial = own * (means[..., 6:] - r.unsqueeze(1))
        coefficients = self.coefficients(h).view(b, n, 4, self.heads).permute(2, 0, 3, 1).unsqueeze(-1)
        c_offset, c_turn, c_radial, c_own = coefficients  # each (B, H, N, 1)
        return (c_offset * offsets + c_turn * turns + c_radial * radial + c_own * own).sum(dim=1)


class TransformerBackbone(nn.Module):
    """Permutation-equivariant transformer over particle tokens (reference: 4 blocks, width 128,
    4 heads, token features (x, x/|x|, log|x|), time embedding added in every block; pair angles
    embedded once and turned into a per-head attention bias in every block).

    ``relative_output`` adds :class:`_RelativeOutput`'s field; ``relative_updates`` (with it) also
    moves the particles after every block by such a field and recomputes the pair angles from the
    moved particles for the next block (EGNN's per-layer coordinate updates); the output is then the
    displacement of the moved particles plus the relative output read at them. ``token_updates``
    (with the updates) adds a linear embedding of each moved particle's token features to its token
    after every block (zero at the start), as EGNN's node update sees the moved coordinates: without
    it the tokens see the moved particles only through the next block's pair bias."""

    def __init__(self, n_particles: int, width: int = 128, depth: int = 4, heads: int = 4,
                 time_dim: int = 64, pair_features: bool = True, event_momenta: EventMomenta | None = None,
                 relative_output: bool = False, relative_updates: bool = False,
                 token_updates: bool = False) -> None:
        super().__init__()
        self.n_particles = n_particles
        self.pair_features = pair_features
        self.event_momenta = event_momenta
        self.time = TimeEmbedding(time_dim)
        # pair channels: log sin^2(theta_ij / 2) of the states, log y_ij of the event
        channels = int(pair_features) + int(event_momenta is not None)
        self.pair_embed = (nn.Sequential(nn.Linear(channels, _PAIR_EMBEDDING), nn.SiLU(),
                                         nn.Linear(_PAIR_EMBEDDING, _PAIR_EMBEDDING))
                           if channels else None)
        self.embed = nn.Linear(N_TOKEN_FEATURES + (event_momenta is not None), width)
        self.blocks = nn.ModuleList([_Block(width, heads, time_dim, channels > 0) for _ in range(depth)])
        self.norm = nn.LayerNorm(width)
        self.out = _zero_linear(width, 3)
        if relative_updates and not relative_output:
            raise ValueError("relative_updates moves the particles for the relative output: needs relative_output")
        self.relative = _RelativeOutput(width, heads, channels > 0) if relative_output else None
        self.updates = (nn.ModuleList([_RelativeOutput(width, heads, channels > 0) for _ in range(depth)])
                        if relative_updates else None)
        if token_updates and not relative_updates:
            raise ValueError("token_updates re-embeds the particles the relative updates move: needs relative_updates")
        self.token_updates = (nn.ModuleList([_zero_linear(self.embed.in_features, width) for _ in range(depth)])
                              if token_updates else None)

    def forward(self, x: Tensor, t: Tensor) -> Tensor:
        temb = self.time(t)
        tokens, pair_channels = [token_features(x)], []
        if self.pair_features:
            pair_channels.append(pair_log_angles(x))
        if self.event_momenta is not None:
            log_y, fractions = event_invariants(self.event_momenta(x))
            tokens.append(fractions.unsqueeze(-1).to(x.dtype))
            pair_channels.append(log_y.to(x.dtype))
        h = self.embed(torch.cat(tokens, dim=-1))

        def embed_pairs() -> Tensor | None:
            return None if self.pair_embed is None else self.pair_embed(torch.stack(pair_channels, dim=-1))

        pairs = embed_pairs()
        moved = x
        for i, block in enumerate(self.blocks):
            h = block(h, temb, pairs)
            if self.updates is not None:
                moved = moved + self.updates[i](h, moved, pairs)
                if self.token_updates is not None:
                    h = h + self.token_updates[i](torch.cat([token_features(moved), *tokens[1:]], dim=-1))
                if self.pair_features:  # the event's invariants stay those of the input state
                    pair_channels[0] = pair_log_angles(moved)
                    pairs = embed_pairs()
        h = self.norm(h)
        if self.relative is None:
            return self.out(h)
        field = self.out(h) + self.relative(h, moved, pairs)
        return field if self.updates is None else field + (moved - x)
