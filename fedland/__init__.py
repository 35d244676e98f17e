"""fedland: federated and on-device training of quantized landmark-localization networks."""

__version__ = "0.1.0"
