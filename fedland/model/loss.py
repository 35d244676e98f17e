"""Heatmap regression loss with intermediate supervision."""

from __future__ import annotations

from collections.abc import Sequence

import torch


def heatmap_loss(
    predictions: Sequence[torch.Tensor], target: torch.Tensor, weight: torch.Tensor | None = None
) -> torch.Tensor:
    """Sum over supervised outputs of the weighted mean squared error.

    `target` is [B, J, H, W]; `weight` is [B, J] (0 for landmarks that are not annotated)
    or None for all ones.
    """
    if not predictions:
        raise ValueError("heatmap_loss needs at least one prediction")
    total = target.new_zeros(())
    for prediction in predictions:
        if prediction.shape != target.shape:
            raise ValueError(
                f"prediction shape {list(prediction.shape)} != target {list(target.shape)}"
            )
        squared = (prediction - target) ** 2
        if weight is not None:
            squared = squared * weight[:, :, None, None]
        total = total + squared.mean()
    return total
