"""Synthetic landmark data written in the real datasets' formats: the embedded default of
every command, learnable, varied across sites, and deterministic per seed."""

from fedland.data.synth.face import synthesize_faces
from fedland.data.synth.output import SynthSummary
from fedland.data.synth.pose import synthesize_poses

__all__ = ["SynthSummary", "synthesize_faces", "synthesize_poses"]
