"""The DU-Net, its configuration, loss and cost accounting."""

from fedland.model.config import DUNetConfig, ModelConfigError
from fedland.model.dunet import DUNet, build_model
from fedland.model.loss import heatmap_loss

__all__ = ["DUNet", "DUNetConfig", "ModelConfigError", "build_model", "heatmap_loss"]
