"""What the Flower apps share: the downlink protocol, the wire settings, the weights a round
exchanges, a node's share of the data and the per-round ledger.

The apps in `server/` and `clients/` stay thin; everything here runs without Flower's
runtime, so it is tested directly.
"""
