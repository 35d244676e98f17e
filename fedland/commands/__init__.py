"""Handlers of the `fedland` subcommands, one module per group."""
