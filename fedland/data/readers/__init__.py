"""Readers of landmark datasets in their published on-disk formats."""
