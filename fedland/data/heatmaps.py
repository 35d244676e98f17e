"""Keypoint <-> heatmap encoding, separate from the model so heads can change target types.

Targets are unnormalised Gaussians (peak 1) centred at the exact sub-pixel location and
truncated at 3 sigma; a landmark that is not annotated, or whose Gaussian falls entirely
outside the map, gets weight 0. Decoding takes the per-map argmax and steps a quarter pixel
towards the higher neighbour in x and in y, or (with `dark`) refines with a second-order
Taylor expansion of the log heatmap (DARK).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

STRIDE = 4  # input pixels per heatmap pixel: the DU-Net's stem halves the input twice


class HeatmapCodec:
    """Targets for, and landmarks from, heatmaps of `heatmap_size` pixels a side, each of
    which covers `STRIDE` input pixels."""

    def __init__(self, heatmap_size: int, sigma: float = 2.0, dark: bool = False) -> None:
        if heatmap_size < 2:
            raise ValueError(f"heatmap size must be >= 2, got {heatmap_size}")
        if not sigma > 0:
            raise ValueError(f"heatmap sigma must be > 0, got {sigma}")
        self.size = heatmap_size
        self.sigma = float(sigma)
        self.dark = dark

    @classmethod
    def for_input(cls, input_size: int, sigma: float = 2.0, dark: bool = False) -> HeatmapCodec:
        """The codec of a network that takes `input_size` pixels a side."""
        if input_size % STRIDE:
            raise ValueError(f"input size {input_size} is not a multiple of {STRIDE}")
        return cls(input_size // STRIDE, sigma, dark)

    @property
    def input_size(self) -> int:
        return self.size * STRIDE

    @staticmethod
    def to_input_pixels(heatmap_points: np.ndarray) -> np.ndarray:
        """Heatmap pixels to input-crop pixels (pixel centres at integers)."""
        return (np.asarray(heatmap_points) + 0.5) * STRIDE - 0.5

    def encode(self, points: np.ndarray, visible: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Heatmaps [J, H, W] and weights [J] for points [J, 2] in heatmap pixels."""
        points = np.asarray(points, dtype=np.float32).reshape(-1, 2)
        reach = 3.0 * self.sigma
        grid = np.arange(self.size, dtype=np.float32)
        dx = grid[None, :] - points[:, :1]  # [J, W]
        dy = grid[None, :] - points[:, 1:]  # [J, H]
        gx = np.where(np.abs(dx) <= reach, np.exp(-(dx**2) / (2 * self.sigma**2)), 0.0)
        gy = np.where(np.abs(dy) <= reach, np.exp(-(dy**2) / (2 * self.sigma**2)), 0.0)
        heatmaps = (gy[:, :, None] * gx[:, None, :]).astype(np.float32)
        inside = (
            (points[:, 0] > -reach)
            & (points[:, 0] < self.size - 1 + reach)
            & (points[:, 1] > -reach)
            & (points[:, 1] < self.size - 1 + reach)
        )
        weights = ((np.asarray(visible).reshape(-1) > 0) & inside).astype(np.float32)
        heatmaps *= weights[:, None, None]
        return heatmaps, weights

    def decode(self, heatmaps: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Sub-pixel peaks [B, J, 2] (x, y in heatmap pixels) and peak values [B, J]."""
        batch, joints, _, width = heatmaps.shape
        flat = heatmaps.reshape(batch, joints, -1)
        maxvals, index = flat.max(dim=2)
        x = (index % width).to(torch.float32)
        y = torch.div(index, width, rounding_mode="floor").to(torch.float32)
        coords = torch.stack([x, y], dim=2)
        if self.dark:
            return coords + self._dark_offset(heatmaps, x.long(), y.long()), maxvals
        return coords + self._quarter_offset(heatmaps, x.long(), y.long()), maxvals

    @staticmethod
    def _quarter_offset(maps: torch.Tensor, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        height, width = maps.shape[-2:]
        padded = F.pad(maps, (1, 1, 1, 1))
        b, j = torch.meshgrid(
            torch.arange(maps.shape[0], device=maps.device),
            torch.arange(maps.shape[1], device=maps.device),
            indexing="ij",
        )
        px, py = x + 1, y + 1
        dx = padded[b, j, py, px + 1] - padded[b, j, py, px - 1]
        dy = padded[b, j, py + 1, px] - padded[b, j, py - 1, px]
        interior_x = (x > 0) & (x < width - 1)
        interior_y = (y > 0) & (y < height - 1)
        offset = torch.stack([torch.sign(dx) * interior_x, torch.sign(dy) * interior_y], dim=2).to(
            torch.float32
        )
        return 0.25 * offset

    def _dark_offset(self, maps: torch.Tensor, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        kernel_size = int(2 * round(3 * self.sigma) + 1)
        smoothed = _gaussian_blur(maps, self.sigma, kernel_size)
        logs = torch.log(smoothed.clamp_min(1e-10))
        padded = F.pad(logs, (2, 2, 2, 2), mode="replicate")
        b, j = torch.meshgrid(
            torch.arange(maps.shape[0], device=maps.device),
            torch.arange(maps.shape[1], device=maps.device),
            indexing="ij",
        )
        px, py = x + 2, y + 2

        def at(dy: int, dx: int) -> torch.Tensor:
            return padded[b, j, py + dy, px + dx]

        centre = at(0, 0)
        gx = 0.5 * (at(0, 1) - at(0, -1))
        gy = 0.5 * (at(1, 0) - at(-1, 0))
        dxx = at(0, 2) - 2 * centre + at(0, -2)
        dyy = at(2, 0) - 2 * centre + at(-2, 0)
        dxy = 0.25 * (at(1, 1) - at(1, -1) - at(-1, 1) + at(-1, -1))
        dxx, dyy = 0.25 * dxx, 0.25 * dyy
        det = dxx * dyy - dxy**2
        ok = det.abs() > 1e-12
        safe = torch.where(ok, det, torch.ones_like(det))
        ox = -(dyy * gx - dxy * gy) / safe
        oy = -(dxx * gy - dxy * gx) / safe
        offset = torch.stack([ox, oy], dim=2) * ok.unsqueeze(2)
        return offset.clamp(-1.0, 1.0)


def _gaussian_blur(maps: torch.Tensor, sigma: float, kernel_size: int) -> torch.Tensor:
    radius = kernel_size // 2
    grid = torch.arange(-radius, radius + 1, dtype=maps.dtype, device=maps.device)
    kernel = torch.exp(-(grid**2) / (2 * sigma**2))
    kernel = kernel / kernel.sum()
    batch, joints, height, width = maps.shape
    flat = maps.reshape(batch * joints, 1, height, width)
    flat = F.conv2d(F.pad(flat, (radius, radius, 0, 0), mode="replicate"), kernel.view(1, 1, 1, -1))
    flat = F.conv2d(F.pad(flat, (0, 0, radius, radius), mode="replicate"), kernel.view(1, 1, -1, 1))
    smoothed = flat.reshape(batch, joints, height, width)
    # Keep the maximum where it was: blur is only for a stable second derivative.
    return smoothed * (
        maps.amax(dim=(2, 3), keepdim=True)
        / smoothed.amax(dim=(2, 3), keepdim=True).clamp_min(1e-10)
    )


def flip_back(heatmaps: torch.Tensor, permutation: np.ndarray | torch.Tensor) -> torch.Tensor:
    """Heatmaps predicted on a horizontally flipped crop, mapped back to the unflipped crop.

    With pixel centres at integers, flipping the crop and flipping its heatmap are exactly
    aligned, so no shift is needed.
    """
    index = torch.as_tensor(np.asarray(permutation), device=heatmaps.device, dtype=torch.long)
    return heatmaps.flip(dims=[3])[:, index]
