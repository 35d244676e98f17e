"""The Flower ServerApp: reads the experiment from the run config and runs the federation."""

from __future__ import annotations

from flwr.app import Context
from flwr.serverapp import Grid, ServerApp

from fedland.federation.settings import experiment_from_run_config
from fedland.server.run import run_federation
from fedland.simulations.configs import QUICKSTART

app = ServerApp()


@app.main()
def main(grid: Grid, context: Context) -> None:
    run_federation(
        grid, experiment_from_run_config(dict(context.run_config), QUICKSTART), context.run_id
    )
