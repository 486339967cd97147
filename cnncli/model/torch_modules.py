"""The few ``torch.nn`` modules cnncli's PyTorch builds need besides PyTorch's own.

A layer of the model format becomes the module a PyTorch user would write: mostly a class of
``torch.nn`` (:mod:`cnncli.model.torch_check` holds that mapping), and for what ``torch.nn``
lacks (asymmetric padding, Keras's batchnorm without γ or β, a reshape in the model's layout…)
one of the classes below. ``--verify`` builds them, and ``cnncli convert model.yaml -o model.py``
copies the ones a model uses into the file it writes, so each class is self-contained: it uses
``torch``, ``nn`` and ``F`` only, and its source reads well on its own.

This module imports torch: it is imported only when a model is built or its source written.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F  # noqa: N812 - PyTorch's own spelling
from torch import nn


class Pad(nn.Module):
    """Zero padding, ``pads`` in F.pad's order: last axis first, (before, after) each."""

    def __init__(self, pads: tuple[int, ...]) -> None:
        super().__init__()
        self.pads = pads

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.pad(x, self.pads)


class ChannelsLast(nn.Module):
    """Apply ``inner`` (a Linear or LayerNorm) to the channel axis of a channels-first tensor."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() <= 2:
            y: torch.Tensor = self.inner(x)
            return y
        y = self.inner(x.movedim(1, -1))
        return y.movedim(-1, 1)


class KerasBatchNorm(nn.Module):
    """Keras's BatchNormalization with only γ (``center=False``) or only β (``scale=False``):
    PyTorch's batchnorm without affine parameters, then the one it keeps."""

    def __init__(
        self, norm: nn.Module, channels: int, spatial: int, scale: bool, center: bool
    ) -> None:
        super().__init__()
        shape = (channels,) + (1,) * spatial
        self.weight = nn.Parameter(torch.ones(shape)) if scale else None
        self.bias = nn.Parameter(torch.zeros(shape)) if center else None
        self.norm = norm

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y: torch.Tensor = self.norm(x)
        if self.weight is not None:
            y = y * self.weight
        if self.bias is not None:
            y = y + self.bias
        return y


class Normalization(nn.Module):
    """Keras's Normalization: (x − mean) / √variance, with mean, variance and the sample count
    as buffers (``size`` numbers each; none when the values were given as constants)."""

    def __init__(self, size: int) -> None:
        super().__init__()
        if size:
            self.register_buffer("mean", torch.zeros(size))
            self.register_buffer("variance", torch.ones(size))
            self.register_buffer("count", torch.zeros(()))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x  # the statistics' values change no shape and no count


class Reshape(nn.Module):
    """Keras's Reshape: ``shape`` without the batch, in the model's layout order."""

    def __init__(self, shape: tuple[int, ...], channels_last: bool) -> None:
        super().__init__()
        self.shape = shape
        self.channels_last = channels_last

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.channels_last:
            return x.movedim(1, -1).reshape(x.shape[0], *self.shape).movedim(-1, 1)
        return x.reshape(x.shape[0], *self.shape)


class Permute(nn.Module):
    """Keras's Permute: ``dims`` orders the axes (batch included), in the model's layout."""

    def __init__(self, dims: tuple[int, ...], channels_last: bool) -> None:
        super().__init__()
        self.dims = dims
        self.channels_last = channels_last

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.channels_last:
            return x.movedim(1, -1).permute(*self.dims).movedim(-1, 1)
        return x.permute(*self.dims)


class Mean(nn.Module):
    """The mean over ``dims`` (batch = 0), counted in the model's layout."""

    def __init__(self, dims: tuple[int, ...], keepdim: bool, channels_last: bool) -> None:
        super().__init__()
        self.dims = dims
        self.keepdim = keepdim
        self.channels_last = channels_last

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.channels_last:
            return x.movedim(1, -1).mean(dim=self.dims, keepdim=self.keepdim).movedim(-1, 1)
        return x.mean(dim=self.dims, keepdim=self.keepdim)


class Rescaling(nn.Module):
    """Keras's Rescaling: ``x * scale + offset``, each a number or one per channel."""

    def __init__(
        self, scale: float | list[float], offset: float | list[float], spatial: int
    ) -> None:
        super().__init__()
        self.scale = scale
        self.offset = offset
        self.spatial = spatial

    def _per_channel(self, value: float | list[float], x: torch.Tensor) -> torch.Tensor | float:
        if not isinstance(value, list):
            return value
        return torch.tensor(value, device=x.device).reshape(-1, *(1,) * self.spatial)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self._per_channel(self.scale, x) + self._per_channel(self.offset, x)


class Cropping(nn.Module):
    """Keras's Cropping: ``crops`` are (before, after) per spatial axis."""

    def __init__(self, crops: tuple[tuple[int, int], ...]) -> None:
        super().__init__()
        self.crops = crops

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        cuts = tuple(slice(a, -b if b else None) for a, b in self.crops)
        return x[(slice(None), slice(None), *cuts)]


class Split(nn.Module):
    """Channels cut into ``chunks`` pieces (torch.chunk) or pieces of ``sizes`` (torch.split)."""

    def __init__(self, chunks: int | None = None, sizes: list[int] | None = None) -> None:
        super().__init__()
        self.chunks = chunks
        self.sizes = sizes

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        if self.sizes is not None:
            return torch.split(x, self.sizes, dim=1)
        assert self.chunks is not None
        return x.chunk(self.chunks, dim=1)


class LayerScale(nn.Module):
    """ConvNeXt's layer scale: a learnable multiplier per channel, shaped (C, 1, 1)."""

    def __init__(self, channels: int, spatial: int, init: float) -> None:
        super().__init__()
        self.gamma = nn.Parameter(torch.full((channels,) + (1,) * spatial, float(init)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.gamma


class KerasPReLU(nn.Module):
    """Keras's PReLU: ``max(x, 0) + α · min(x, 0)`` with a learned α of ``shape`` (channels
    first, without the batch; 1 on the axes that share a slope), one per position by default."""

    def __init__(self, shape: tuple[int, ...]) -> None:
        super().__init__()
        self.alpha = nn.Parameter(torch.zeros(shape))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.clamp(x, min=0) + self.alpha * torch.clamp(x, max=0)


class DepthToSpace(nn.Module):
    """TensorFlow's depth_to_space (ONNX DepthToSpace, mode DCR): (C·r², H, W) → (C, H·r, W·r)
    taking the block's position from the outer channels (PixelShuffle takes it from the inner)."""

    def __init__(self, block: int) -> None:
        super().__init__()
        self.block = block

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        r = self.block
        y = x.reshape(n, r, r, c // (r * r), h, w).permute(0, 3, 4, 1, 5, 2)
        return y.reshape(n, c // (r * r), h * r, w * r)


class SpaceToDepth(nn.Module):
    """TensorFlow's space_to_depth (ONNX SpaceToDepth): (C, H·r, W·r) → (C·r², H, W), the
    block's position in the outer channels (the inverse of :class:`DepthToSpace`)."""

    def __init__(self, block: int) -> None:
        super().__init__()
        self.block = block

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        r = self.block
        y = x.reshape(n, c, h // r, r, w // r, r).permute(0, 3, 5, 1, 2, 4)
        return y.reshape(n, c * r * r, h // r, w // r)


#: Every class above, in the order a written source file defines them.
HELPERS = (
    Pad,
    ChannelsLast,
    KerasBatchNorm,
    Normalization,
    Reshape,
    Permute,
    Mean,
    Rescaling,
    Cropping,
    Split,
    LayerScale,
    KerasPReLU,
    DepthToSpace,
    SpaceToDepth,
)
