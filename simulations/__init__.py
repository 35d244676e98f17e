"""Experiment configs (YAML) and the harness that runs them on Flower's Simulation Engine.

Also the home of sweeps over bit-widths, run reports and plots.
"""
