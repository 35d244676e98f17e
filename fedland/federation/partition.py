"""Split a dataset's records among simulated federated clients, IID or non-IID.

The splitting itself is done by flwr-datasets partitioners (the ones Flower's own baselines use,
so results stay comparable with the literature); this module only feeds them a two-column
in-memory `datasets.Dataset` (record index, attribute value) and turns their output back into
index lists. Which partitioner backs each scheme:

- ``iid``: `IidPartitioner`, equal-sized shards of the seeded shuffle of the records.
- ``dirichlet``: `DirichletPartitioner` (label skew); each attribute value is divided among the
  partitions with proportions drawn from Dirichlet(alpha): small alpha, few values per client.
- ``pathological``: `PathologicalPartitioner`; each partition holds records of at most
  `classes_per_partition` attribute values (assignment mode "first-deterministic", or
  "deterministic" when there are fewer partitions than values, so that no value is dropped).
- ``natural``: `NaturalIdPartitioner`, one partition per attribute value (e.g. per 300-W site).
- ``quantity``: `SizePartitioner` with sizes drawn from Dirichlet(alpha) (quantity skew). This
  is the size model of `DirichletPartitioner` on a constant label, but every size is floored at
  `min_partition_size` by construction, so it never needs that partitioner's rejection retries
  (which fail on small datasets); `Linear`/`Square`/`ExponentialPartitioner` have no knob.

Every scheme is deterministic per seed, and every record lands in exactly one partition. Records
are shuffled (seeded) before partitioning because readers return them grouped (by site, by
file), and the partitioners split contiguous runs.

The keyword arguments of `partition_records` are named like the fields of a future config
section, so `partition_records(records, **dataclasses.asdict(section))` will work.
"""

from __future__ import annotations

import contextlib
import io
import math
import warnings
from collections import Counter
from collections.abc import Sequence
from typing import Any

import numpy as np

from fedland.config import PARTITION_SCHEMES
from fedland.data.records import Record
from fedland.table import format_table

SCHEMES = PARTITION_SCHEMES  # declared with the partition settings
# Schemes that split by the attribute's values (iid and quantity ignore it).
LABEL_SCHEMES = ("dirichlet", "pathological", "natural")
# Record fields readable as attributes besides `record.attributes[...]`.
_FIELDS = ("subset", "split")
# Column names of the in-memory dataset handed to the partitioners.
_INDEX, _LABEL = "record", "value"
# More attribute values than this: the table shows a count of values instead of a column each.
_MAX_VALUE_COLUMNS = 10


def attribute_values(records: Sequence[Record], attribute: str) -> list[Any]:
    """The attribute of every record: `attributes[attribute]`, or the `subset`/`split` field.

    A record without it is an error (naming the record and the keys it does have): silently
    putting such records in a "missing" group would skew a non-IID split without anyone noticing.
    """
    values = []
    for position, record in enumerate(records):
        if attribute in _FIELDS:
            value = getattr(record, attribute)
            present = value != ""
        else:
            value = record.attributes.get(attribute)
            present = attribute in record.attributes
        if not present:
            available = [name for name in _FIELDS if getattr(record, name)]
            available += sorted(record.attributes)
            raise ValueError(
                f"record {position} ({record.source or record.image}) has no attribute "
                f"{attribute!r}; it has: {', '.join(available) or 'none'}"
            )
        values.append(value)
    return values


def partition_records(
    records: Sequence[Record],
    scheme: str,
    num_partitions: int,
    *,
    attribute: str = "site",
    alpha: float = 0.5,
    classes_per_partition: int = 2,
    seed: int = 0,
    min_partition_size: int = 1,
) -> list[list[int]]:
    """Indices into `records`, one sorted list per partition; disjoint and covering all records.

    `attribute` matters for the label schemes (dirichlet, pathological, natural), `alpha` for
    dirichlet and quantity, `classes_per_partition` for pathological. Every partition gets at
    least `min_partition_size` records (at least one, whatever the setting) or this raises.
    """
    if scheme not in SCHEMES:
        raise ValueError(
            f"unknown partition scheme {scheme!r}; expected one of {', '.join(SCHEMES)}"
        )
    num_records = len(records)
    if num_partitions < 1:
        raise ValueError(f"num_partitions must be at least 1, got {num_partitions}")
    if num_partitions > num_records:
        raise ValueError(
            f"num_partitions={num_partitions} is more than the {num_records} records to partition"
        )
    if not alpha > 0 or not math.isfinite(alpha):
        raise ValueError(f"alpha must be a positive number, got {alpha}")
    if min_partition_size < 0:
        raise ValueError(f"min_partition_size must not be negative, got {min_partition_size}")

    rng = np.random.default_rng(seed)
    order = rng.permutation(num_records)
    columns: dict[str, list[Any]] = {_INDEX: order.tolist()}
    labels: list[Any] = []
    if scheme in LABEL_SCHEMES:
        labels = _labels(attribute_values(records, attribute))
        columns[_LABEL] = [labels[i] for i in order]
        _check_label_scheme(scheme, labels, num_partitions, classes_per_partition, attribute)

    partitioner = _partitioner(
        scheme,
        num_records,
        num_partitions,
        len(set(labels)),
        alpha,
        classes_per_partition,
        seed,
        min_partition_size,
        rng,
    )
    from datasets import Dataset  # imported here: loading `datasets` takes seconds

    partitioner.dataset = Dataset.from_dict(columns)
    # The partitioners warn (Dirichlet retries, unused labels) and print tqdm bars; the checks
    # below turn every problem into an error that says what to change instead.
    with warnings.catch_warnings(), contextlib.redirect_stderr(io.StringIO()):
        warnings.simplefilter("ignore")
        try:
            partitions = [
                sorted(partitioner.load_partition(i)[_INDEX]) for i in range(num_partitions)
            ]
        except ValueError as error:
            raise ValueError(
                _advice(
                    scheme, attribute, error, num_records, num_partitions, alpha, min_partition_size
                )
            ) from error

    _check_result(partitions, num_records, scheme, labels, min_partition_size)
    return partitions


def _labels(values: list[Any]) -> list[Any]:
    """Values the partitioners can group by: ints stay ints (sorted numerically), others str."""
    if all(isinstance(v, int | np.integer) and not isinstance(v, bool) for v in values):
        return [int(v) for v in values]
    return [str(v) for v in values]


def _check_label_scheme(
    scheme: str, labels: list[Any], num_partitions: int, classes_per_partition: int, attribute: str
) -> None:
    distinct = sorted(set(labels))
    if scheme == "natural" and num_partitions != len(distinct):
        raise ValueError(
            f"natural partitioning by {attribute!r} makes one partition per value, so "
            f"num_partitions must be {len(distinct)}, not {num_partitions} (values: "
            f"{', '.join(map(str, distinct))})"
        )
    if scheme != "pathological":
        return
    if not 1 <= classes_per_partition <= len(distinct):
        raise ValueError(
            f"classes_per_partition must be between 1 and the {len(distinct)} values of "
            f"{attribute!r} ({', '.join(map(str, distinct))}), got {classes_per_partition}"
        )
    # Fewer partitions than values: partition i takes values i .. i+k-1, which misses some
    # values (and so their records) unless the windows reach the last value.
    if num_partitions < len(distinct) and num_partitions + classes_per_partition - 1 < len(
        distinct
    ):
        raise ValueError(
            f"pathological partitioning cannot place every value of {attribute!r} "
            f"({len(distinct)} values) in {num_partitions} partitions of "
            f"{classes_per_partition} value(s) each; raise classes_per_partition to at least "
            f"{len(distinct) - num_partitions + 1} or num_partitions to at least {len(distinct)}"
        )


def _partitioner(
    scheme: str,
    num_records: int,
    num_partitions: int,
    num_values: int,
    alpha: float,
    classes_per_partition: int,
    seed: int,
    min_partition_size: int,
    rng: np.random.Generator,
) -> Any:
    from flwr_datasets import partitioner as fp  # imported here: loading it takes seconds

    if scheme == "iid":
        return fp.IidPartitioner(num_partitions)
    if scheme == "dirichlet":
        return fp.DirichletPartitioner(
            num_partitions,
            partition_by=_LABEL,
            alpha=float(alpha),
            min_partition_size=min_partition_size,
            # Off: pure Dirichlet(alpha) proportions, so alpha alone sets the skew (balancing
            # depends on the order of the values and weakens it unpredictably).
            self_balancing=False,
            seed=seed,
        )
    if scheme == "pathological":
        return fp.PathologicalPartitioner(
            num_partitions,
            partition_by=_LABEL,
            num_classes_per_partition=classes_per_partition,
            # "first-deterministic" gives partition i value i (mod the number of values) and
            # the rest at random, so every value is used when there are at least as many
            # partitions as values; with fewer, only "deterministic" (partition i takes values
            # i .. i+k-1) is sure to use them all ("random" may drop values and their records).
            class_assignment_mode=(
                "first-deterministic" if num_partitions >= num_values else "deterministic"
            ),
            seed=seed,
        )
    if scheme == "natural":
        return fp.NaturalIdPartitioner(partition_by=_LABEL)
    sizes = _quantity_sizes(num_records, num_partitions, alpha, min_partition_size, rng)
    # A 0 is possible only with min_partition_size=0; SizePartitioner's message names no partition.
    _check_sizes("quantity", sizes, min_partition_size)
    return fp.SizePartitioner(sizes)


def _quantity_sizes(
    num_records: int,
    num_partitions: int,
    alpha: float,
    min_partition_size: int,
    rng: np.random.Generator,
) -> list[int]:
    """Partition sizes: `min_partition_size` each, the rest split by Dirichlet(alpha) shares."""
    extra = num_records - num_partitions * min_partition_size
    if extra < 0:
        raise ValueError(
            f"quantity partitioning cannot give {num_partitions} partitions "
            f"min_partition_size={min_partition_size} records each from {num_records} records"
        )
    shares = rng.dirichlet(np.full(num_partitions, float(alpha)))
    return (min_partition_size + rng.multinomial(extra, shares / shares.sum())).tolist()


def _advice(
    scheme: str,
    attribute: str,
    error: ValueError,
    num_records: int,
    num_partitions: int,
    alpha: float,
    min_partition_size: int,
) -> str:
    if scheme == "dirichlet" and "attempts" in str(error):
        return (
            f"dirichlet partitioning by {attribute!r} could not give each of {num_partitions} "
            f"partitions at least min_partition_size={min_partition_size} of {num_records} "
            f"records in 11 draws; raise alpha (now {alpha}), lower min_partition_size, or use "
            f"fewer partitions"
        )
    if scheme == "pathological":  # flwr's message names its own knobs; add ours
        return (
            f"pathological partitioning by {attribute!r} failed: {error} (here: lower "
            f"num_partitions, now {num_partitions}, or classes_per_partition)"
        )
    return f"{scheme} partitioning by {attribute!r} failed: {error}"


def _check_result(
    partitions: list[list[int]],
    num_records: int,
    scheme: str,
    labels: list[Any],
    min_partition_size: int,
) -> None:
    placed = Counter(i for part in partitions for i in part)
    missing = sorted(set(range(num_records)) - set(placed))
    if missing:
        lost = sorted({str(labels[i]) for i in missing}) if labels else []
        raise ValueError(
            f"{scheme} partitioning left {len(missing)} records in no partition"
            + (f" (values: {', '.join(lost)})" if lost else "")
        )
    twice = [i for i, count in placed.items() if count > 1]
    if twice:  # the partitioners never do this; guard the "exactly once" promise anyway
        raise ValueError(f"{scheme} partitioning put {len(twice)} records in several partitions")
    _check_sizes(scheme, [len(part) for part in partitions], min_partition_size)


def _check_sizes(scheme: str, sizes: list[int], min_partition_size: int) -> None:
    """Every partition non-empty and at least `min_partition_size`, or an error naming them."""
    needed = max(min_partition_size, 1)
    small = [(i, size) for i, size in enumerate(sizes) if size < needed]
    if not small:
        return
    what = "would be empty" if needed == 1 else f"would have fewer than {needed} records"
    listed = ", ".join(f"partition {i}: {size}" for i, size in small[:8])
    listed += ", ..." if len(small) > 8 else ""
    if scheme == "natural":
        fixes = "lower min_partition_size"
    else:
        fixes = "use fewer partitions"
        fixes += ", raise alpha" if scheme in ("dirichlet", "quantity") else ""
        fixes += ", lower min_partition_size" if needed > 1 else ""
    raise ValueError(f"{scheme} partitioning: {len(small)} partition(s) {what} ({listed}); {fixes}")


def partition_statistics(
    records: Sequence[Record], partitions: Sequence[Sequence[int]], attribute: str
) -> dict[str, Any]:
    """Sizes and per-value counts of every partition, and how far each is from the whole.

    The non-IID measure is the total-variation distance between a partition's distribution of
    `attribute` values and the global one (0: same mix, 1: disjoint values), averaged over the
    partitions without weighting (each client counts once, as in federated averaging rounds).
    Even an IID split has a small distance from sampling noise, larger for smaller partitions.
    """
    labels = _labels(attribute_values(records, attribute))
    values = sorted(set(labels))
    names = [str(v) for v in values]
    total = Counter(labels)
    global_share = np.array([total[v] for v in values], dtype=float) / max(len(labels), 1)
    rows = []
    for number, part in enumerate(partitions):
        counts = Counter(labels[i] for i in part)
        vector = np.array([counts[v] for v in values], dtype=float)
        distance = (
            float(0.5 * np.abs(vector / len(part) - global_share).sum()) if len(part) else None
        )
        rows.append(
            {
                "partition": number,
                "size": len(part),
                "counts": {name: counts[v] for name, v in zip(names, values, strict=True)},
                "tv_distance": distance,
            }
        )
    sizes = [row["size"] for row in rows]
    distances = [row["tv_distance"] for row in rows if row["tv_distance"] is not None]
    return {
        "attribute": attribute,
        "num_records": len(records),
        "num_assigned": int(sum(sizes)),
        "num_partitions": len(rows),
        "values": names,
        "global_counts": {name: total[v] for name, v in zip(names, values, strict=True)},
        "partitions": rows,
        "sizes": {
            "min": int(min(sizes, default=0)),
            "median": float(np.median(sizes)) if sizes else 0.0,
            "max": int(max(sizes, default=0)),
        },
        "mean_tv_distance": float(np.mean(distances)) if distances else 0.0,
        "max_tv_distance": float(max(distances, default=0.0)),
    }


def format_partition_table(stats: dict[str, Any]) -> str:
    """One row per partition (size, count per value, distance from the global mix), a total."""
    names = stats["values"]
    per_value = len(names) <= _MAX_VALUE_COLUMNS
    header = ["partition", "size", *(names if per_value else ["values"]), "TV"]
    rows: list[list[object]] = []
    for row in stats["partitions"]:
        counts = row["counts"]
        cells = [counts[n] for n in names] if per_value else [sum(c > 0 for c in counts.values())]
        distance = row["tv_distance"]
        rows.append(
            [row["partition"], row["size"], *cells, "-" if distance is None else f"{distance:.3f}"]
        )
    overall = stats["global_counts"]
    cells = [overall[n] for n in names] if per_value else [len(names)]
    rows.append(["all", stats["num_assigned"], *cells, ""])
    sizes = stats["sizes"]
    summary = (
        f"sizes min/median/max {sizes['min']}/{sizes['median']:g}/{sizes['max']}; TV distance "
        f"from the global {stats['attribute']!r} mix: mean {stats['mean_tv_distance']:.3f}, "
        f"max {stats['max_tv_distance']:.3f}"
    )
    return format_table(header, rows) + "\n" + summary
