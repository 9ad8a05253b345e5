"""Building blocks: convolutions, spatial feature transforms and the quality-map condition nets.

SFT (Wang et al., CVPR 2018, "Recovering realistic texture in image super-resolution by deep
spatial feature transform"; used for variable-rate coding by Song et al., ICCV 2021) modulates
a feature map with a per-pixel affine transform predicted from a condition:
``out = x * (1 + gamma(c)) + beta(c)``. ``gamma`` and ``beta`` start at zero so an untrained
SFT is the identity. GDN/IGDN are compressai's (Ballé et al., ICLR 2016/2017).
"""

from __future__ import annotations

import contextlib

import torch
from torch import Tensor, nn


def conv(cin: int, cout: int, kernel: int = 5, stride: int = 2) -> nn.Conv2d:
    """Convolution with 'same'-style padding; stride 2 halves the size (rounding up)."""
    return nn.Conv2d(cin, cout, kernel, stride=stride, padding=kernel // 2)


def deconv(cin: int, cout: int, kernel: int = 5, stride: int = 2) -> nn.ConvTranspose2d:
    """Transposed convolution that multiplies the size by ``stride`` exactly."""
    return nn.ConvTranspose2d(cin, cout, kernel, stride=stride, padding=kernel // 2,
                              output_padding=stride - 1)


def act() -> nn.Module:
    return nn.LeakyReLU(0.2, inplace=True)


class SFT(nn.Module):
    """Spatial feature transform of ``channels`` features from ``cond_channels`` condition maps."""

    def __init__(self, channels: int, cond_channels: int) -> None:
        super().__init__()
        self.body = nn.Sequential(conv(cond_channels, cond_channels, 3, 1), act())
        self.gamma = nn.Conv2d(cond_channels, channels, 1)
        self.beta = nn.Conv2d(cond_channels, channels, 1)
        for layer in (self.gamma, self.beta):
            nn.init.zeros_(layer.weight)
            nn.init.zeros_(layer.bias)

    def forward(self, x: Tensor, cond: Tensor) -> Tensor:
        h = self.body(cond)
        return x * (1 + self.gamma(h)) + self.beta(h)


class ResidualBlock(nn.Module):
    """``x + conv(act(conv(x)))`` with two 3×3 convolutions that keep size and channels.

    Depth for the transforms at little cost (He et al., CVPR 2016, "Deep residual learning
    for image recognition"; used between the stride-2 stages of a learned codec's transforms
    by Cheng et al., CVPR 2020, "Learned image compression with discretized Gaussian mixture
    likelihoods and attention modules"). The second convolution starts at zero, so a new
    block is the identity: inserted into a trained network (:mod:`bench.learned.widen`) it
    changes nothing until training moves it.
    """

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.body = nn.Sequential(conv(channels, channels, 3, 1), act(),
                                  conv(channels, channels, 3, 1))
        nn.init.zeros_(self.body[2].weight)
        nn.init.zeros_(self.body[2].bias)

    def forward(self, x: Tensor) -> Tensor:
        return x + self.body(x)


class EncoderCondition(nn.Module):
    """Full-resolution quality map → condition features at 1/2, 1/4, 1/8 resolution."""

    def __init__(self, channels: int, levels: int = 3) -> None:
        super().__init__()
        self.stages = nn.ModuleList(
            nn.Sequential(conv(1 if i == 0 else channels, channels, 3, 2), act())
            for i in range(levels)
        )

    def forward(self, q: Tensor) -> list[Tensor]:
        return run_stages(self.stages, q)


def run_stages(stages: nn.ModuleList, x: Tensor) -> list[Tensor]:
    """Apply ``stages`` in turn and keep every stage's output (a feature pyramid)."""
    out = []
    for stage in stages:
        x = stage(x)
        out.append(x)
    return out


class LatentCondition(nn.Module):
    """Latent-resolution (1/16) quality map → condition features, the decoder's only view of q."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.body = nn.Sequential(conv(1, channels, 3, 1), act(), conv(channels, channels, 3, 1),
                                  act())

    def forward(self, q_lat: Tensor) -> Tensor:
        return self.body(q_lat)


class DecoderCondition(nn.Module):
    """Latent condition features → features at 1/8, 1/4, 1/2 resolution (transposed convs)."""

    def __init__(self, channels: int, levels: int = 3) -> None:
        super().__init__()
        self.stages = nn.ModuleList(
            nn.Sequential(deconv(channels, channels, 3, 2), act()) for _ in range(levels)
        )

    def forward(self, c_lat: Tensor) -> list[Tensor]:
        return run_stages(self.stages, c_lat)


@contextlib.contextmanager
def single_thread():
    """Run a block with one intra-op thread, then restore the previous setting.

    The entropy-parameter path (hyper-decoder → CDF table indexes) must give bit-identical
    results in the encoder and in a decoder running in another process; a fixed thread count
    on the CPU keeps the float reduction order fixed (compressai's models rely on the same).
    """
    n = torch.get_num_threads()
    if n != 1:
        torch.set_num_threads(1)
    try:
        yield
    finally:
        if n != 1:
            torch.set_num_threads(n)
