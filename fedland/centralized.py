"""Centralized training: the single-machine baseline that federated runs are compared with.

A run folder holds `config.yaml`, `metrics.jsonl` (one line per epoch), `last.pt` (everything
needed to resume), `best.pt` (the best model by the task metric) and `summary.json`.
"""

from __future__ import annotations

import functools
import json
import math
import time
from pathlib import Path

import torch
from tqdm import tqdm

from fedland.config import ConfigError, ExperimentConfig, dump_config, load_config_dict
from fedland.data.dataset import make_loader
from fedland.evaluation import is_better, primary_metric
from fedland.federation.run_folder import RunFolderError, write_atomically
from fedland.model.checkpoint import load_checkpoint, save_checkpoint
from fedland.task import build_data, evaluate_model, flip_test_enabled, task_model
from fedland.train import make_optimizer, resolve_device, train_epoch


def train(config: ExperimentConfig, out: str | Path, resume: bool = False) -> dict:
    """Train, evaluating and checkpointing every epoch; returns the summary."""
    out = Path(out)
    last = out / "last.pt"
    if last.exists() and not resume:
        raise RunFolderError(f"{out} already holds a run; pass --resume or choose another --out")
    if resume and last.exists():
        _refuse_other_settings(last, config)  # before anything in the folder changes
    out.mkdir(parents=True, exist_ok=True)
    write_atomically(out / "config.yaml", dump_config(config))
    torch.manual_seed(config.train.seed)
    device = resolve_device(config.train.device)
    task = build_data(config, progress=True)
    metric, _ = primary_metric(task.meta, task.evaluation.records)
    settings = config.train

    state: dict = {"epoch": 0, "best": None, "history": []}
    if resume and last.exists():
        model, state = load_checkpoint(last)
    else:
        model = task_model(config, task.meta)
    model.to(device)
    optimizer = make_optimizer(
        model, settings.lr, settings.rmsprop_alpha, settings.rmsprop_eps, settings.weight_decay
    )
    scheduler = torch.optim.lr_scheduler.MultiStepLR(
        optimizer, settings.lr_milestones, settings.lr_factor
    )
    if "optimizer" in state:
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
    history: list[dict] = list(state["history"])
    best = state["best"]
    loader = make_loader(task.train, settings.batch_size, True, config.data.workers, settings.seed)
    if "rng" in state:
        _restore_rng(state["rng"], loader.generator, device)
    flip_test = flip_test_enabled(config, task.meta)
    started = time.perf_counter()
    deadline = (
        started + 60 * settings.time_limit_minutes if settings.time_limit_minutes else math.inf
    )
    for epoch in range(state["epoch"] + 1, settings.epochs + 1):
        task.train.set_epoch(epoch)
        description = f"epoch {epoch}/{settings.epochs}"
        bar = tqdm(total=len(task.train), desc=description, unit="img", leave=False)
        stats = train_epoch(
            model, loader, optimizer, device, progress=functools.partial(_tick, bar)
        )
        bar.close()
        lr = optimizer.param_groups[0]["lr"]
        scheduler.step()
        metrics = evaluate_model(
            model,
            task.evaluation,
            task.codec,
            device,
            settings.batch_size,
            config.data.workers,
            flip_test,
        )
        value = metrics[metric]
        improved = is_better(task.meta, value, best)
        if improved:
            best = value
        row = {
            "epoch": epoch,
            "loss": stats.loss,
            "lr": lr,
            **{k: v for k, v in metrics.items() if not isinstance(v, list)},
            "train_images_per_second": stats.images_per_second,
            "seconds": time.perf_counter() - started,
        }
        history.append(row)
        with (out / "metrics.jsonl").open("a") as handle:
            handle.write(json.dumps(row) + "\n")
        extra = {"epoch": epoch, "best": best, "history": history, "config": config.to_dict()}
        if improved:
            save_checkpoint(out / "best.pt", model, **extra)
        save_checkpoint(
            last,
            model,
            optimizer=optimizer.state_dict(),
            scheduler=scheduler.state_dict(),
            rng=_rng_state(loader.generator, device),
            **extra,
        )
        print(
            f"epoch {epoch}/{settings.epochs}  loss {stats.loss:.5f}  {metric} {value:.2f}%"
            f"  best {best:.2f}%  {stats.images_per_second:.1f} img/s  lr {lr:.2e}",
            flush=True,
        )
        if time.perf_counter() > deadline:
            print(f"stopping: time limit of {settings.time_limit_minutes} minutes reached")
            break
    summary = {
        "metric": metric,
        "best": best,
        "final": history[-1][metric] if history else None,
        "epochs": len(history),
        "wall_seconds": time.perf_counter() - started,
        "config": config.to_dict(),
    }
    write_atomically(out / "summary.json", json.dumps(summary, indent=2))
    return summary


# What a resumed run may change: how long it trains, where, and with how many data workers.
RESUMABLE_CHANGES = ("train.epochs", "train.out", "train.time_limit_minutes", "data.workers")


def _refuse_other_settings(last: Path, config: ExperimentConfig) -> None:
    """A resumed run trains the checkpoint's model with its optimizer: other settings would
    be recorded but not used, so they are refused, each named."""
    _, payload = load_checkpoint(last)
    saved = _flat(load_config_dict(payload["config"]).to_dict())
    planned = _flat(config.to_dict())
    differ = [
        key for key in planned if key not in RESUMABLE_CHANGES and saved.get(key) != planned[key]
    ]
    if differ:
        changes = "; ".join(
            f"{key}: {saved.get(key)!r} there, {planned[key]!r} now" for key in differ
        )
        raise ConfigError(f"{last}: cannot resume with other settings ({changes})")


def _flat(settings: dict, prefix: str = "") -> dict:
    flat = {}
    for key, value in settings.items():
        if isinstance(value, dict):
            flat.update(_flat(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def _rng_state(loader_generator: torch.Generator, device: torch.device) -> dict:
    """The random states the next epoch draws from: the loader's shuffle and the global
    generators (stochastic gradient rounding), so a resumed run continues bit-exactly."""
    state = {"loader": loader_generator.get_state(), "torch": torch.get_rng_state()}
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def _restore_rng(state: dict, loader_generator: torch.Generator, device: torch.device) -> None:
    loader_generator.set_state(state["loader"])
    torch.set_rng_state(state["torch"])
    if device.type == "cuda" and "cuda" in state:
        torch.cuda.set_rng_state(state["cuda"], device)


def _tick(bar: tqdm, images: int, loss: float) -> None:
    bar.update(images)
    bar.set_postfix(loss=f"{loss:.5f}", refresh=False)
