"""Experiment configs shipped with fedland (package data)."""

from pathlib import Path

QUICKSTART = Path(__file__).with_name("quickstart.yaml")
