"""Client partitions for federated simulations: coverage, skew, determinism, clear errors."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import numpy as np
import pytest

from fedland.data.readers import read_dataset
from fedland.data.records import Record
from fedland.data.synth import synthesize_faces
from fedland.federation.partition import (
    SCHEMES,
    attribute_values,
    format_partition_table,
    partition_records,
    partition_statistics,
)

SITES = ["afw"] * 20 + ["helen"] * 90 + ["lfpw"] * 50 + ["ibug"] * 40  # grouped, like readers


def record(subset: str = "", **attributes: object) -> Record:
    return Record(
        image=Path("x.jpg"),
        landmarks=np.zeros((68, 2)),
        visible=np.ones(68),
        center=np.zeros(2),
        scale=1.0,
        split="train",
        subset=subset,
        attributes=dict(attributes),
    )


@pytest.fixture(scope="module")
def faces() -> list[Record]:
    return [
        record(subset=f"{site}/trainset", site=site, yaw=float(i)) for i, site in enumerate(SITES)
    ]


def partitions_for(records: list[Record], scheme: str, **kwargs: object) -> list[list[int]]:
    num = 4 if scheme == "natural" else 8
    return partition_records(records, scheme, num, **kwargs)


def sites_of(faces: list[Record], part: list[int]) -> set[str]:
    return {faces[i].attributes["site"] for i in part}


@pytest.mark.parametrize("scheme", SCHEMES)
def test_every_record_in_exactly_one_partition(faces: list[Record], scheme: str) -> None:
    parts = partitions_for(faces, scheme)
    flat = [i for part in parts for i in part]
    assert sorted(flat) == list(range(len(faces)))
    assert all(part == sorted(part) and part for part in parts)


def test_iid_sizes_balanced_and_attribute_unused(faces: list[Record]) -> None:
    sizes = [len(p) for p in partition_records(faces, "iid", 7)]
    assert max(sizes) - min(sizes) <= 1
    # The records are grouped by site; a shuffled IID split mixes them.
    assert all(len(sites_of(faces, p)) >= 3 for p in partition_records(faces, "iid", 7))
    bare = [record() for _ in range(30)]  # no attributes at all: fine for iid and quantity
    for scheme in ("iid", "quantity"):
        parts = partition_records(bare, scheme, 3)
        assert len(parts) == 3 and all(parts)
        assert sorted(i for p in parts for i in p) == list(range(30)), scheme
    assert [len(p) for p in partition_records(bare, "iid", 3)] == [10, 10, 10]


def mean_tv(records: list[Record], parts: list[list[int]]) -> float:
    return partition_statistics(records, parts, "site")["mean_tv_distance"]


def test_dirichlet_small_alpha_is_more_skewed(faces: list[Record]) -> None:
    skewed = [
        mean_tv(faces, partitions_for(faces, "dirichlet", alpha=0.1, seed=s)) for s in range(3)
    ]
    mixed = [
        mean_tv(faces, partitions_for(faces, "dirichlet", alpha=100.0, seed=s)) for s in range(3)
    ]
    assert np.mean(skewed) > np.mean(mixed) + 0.2


@pytest.mark.parametrize(("num", "k"), [(8, 2), (8, 1), (3, 2)])
def test_pathological_at_most_k_values_per_partition(faces: list[Record], num: int, k: int) -> None:
    # 3 partitions < 4 sites: the windows of 2 consecutive values still cover every site.
    parts = partition_records(faces, "pathological", num, classes_per_partition=k)
    assert all(len(sites_of(faces, p)) <= k for p in parts)
    assert sorted(i for p in parts for i in p) == list(range(len(faces)))


def test_natural_one_value_per_partition(faces: list[Record]) -> None:
    parts = partition_records(faces, "natural", 4)
    assert [sites_of(faces, p) for p in parts] == [{"afw"}, {"helen"}, {"ibug"}, {"lfpw"}]
    # Integer attributes keep numeric order (10 after 9, not after 1).
    buckets = [record(bucket=b) for b in [10, 9, 1, 10, 2]]
    parts = partition_records(buckets, "natural", 4, attribute="bucket")
    assert [[buckets[i].attributes["bucket"] for i in p] for p in parts] == [
        [1],
        [2],
        [9],
        [10, 10],
    ]


def test_quantity_sizes_skewed_by_alpha(faces: list[Record]) -> None:
    def spread(alpha: float) -> float:
        sizes = [len(p) for p in partitions_for(faces, "quantity", alpha=alpha)]
        assert min(sizes) >= 1
        return float(np.std(sizes))

    sizes = [len(p) for p in partitions_for(faces, "quantity")]
    assert max(sizes) > 2 * min(sizes)
    assert spread(0.3) > spread(1000.0)
    assert min(len(p) for p in partitions_for(faces, "quantity", min_partition_size=20)) >= 20


@pytest.mark.parametrize("scheme", ["iid", "dirichlet", "pathological", "quantity"])
def test_deterministic_per_seed(faces: list[Record], scheme: str) -> None:
    first = partitions_for(faces, scheme, seed=3)
    assert partitions_for(faces, scheme, seed=3) == first
    assert partitions_for(faces, scheme, seed=4) != first


def test_statistics_json_and_table(faces: list[Record]) -> None:
    parts = partition_records(faces, "natural", 4)
    stats = partition_statistics(faces, parts, "site")
    assert json.loads(json.dumps(stats)) == stats
    assert stats["sizes"] == {"min": 20, "median": 45.0, "max": 90}
    assert stats["partitions"][0]["counts"] == {"afw": 20, "helen": 0, "ibug": 0, "lfpw": 0}
    # afw is 10% of all faces: a partition of only afw is 0.9 away from the global mix.
    assert stats["partitions"][0]["tv_distance"] == pytest.approx(0.9)
    table = format_partition_table(stats)
    assert "helen" in table and "TV" in table and table.splitlines()[-2].startswith("all")


def test_attribute_values_fields_and_missing() -> None:
    records = [record(subset="helen/trainset", site="helen")]
    assert attribute_values(records, "subset") == ["helen/trainset"]
    assert attribute_values(records, "split") == ["train"]
    with pytest.raises(ValueError, match=r"'yaw'; it has: subset, split, site"):
        attribute_values(records, "yaw")
    with pytest.raises(ValueError, match="'activity'"):
        partition_records([*records, record(activity="run")], "dirichlet", 2, attribute="activity")


@pytest.mark.parametrize(
    ("scheme", "num", "kwargs", "message"),
    [
        ("clustered", 2, {}, "iid, dirichlet, pathological, natural, quantity"),
        ("iid", 0, {}, "at least 1"),
        ("iid", 201, {}, "201.*200 records"),
        ("dirichlet", 4, {"alpha": 0.0}, "alpha"),
        ("quantity", 4, {"alpha": -1.0}, "alpha"),
        ("natural", 3, {}, "must be 4, not 3.*afw, helen, ibug, lfpw"),
        ("pathological", 4, {"classes_per_partition": 5}, "classes_per_partition"),
        ("pathological", 2, {"classes_per_partition": 1}, "classes_per_partition to at least 3"),
        ("dirichlet", 8, {"min_partition_size": 30, "alpha": 0.05}, "min_partition_size"),
        ("dirichlet", 40, {"min_partition_size": 0, "alpha": 0.01}, r"partition \d+: 0"),
        ("quantity", 40, {"min_partition_size": 0, "alpha": 0.01}, r"empty \(partition \d+: 0"),
        ("natural", 4, {"min_partition_size": 25}, "partition 0: 20"),
    ],
)
def test_errors(faces: list[Record], scheme: str, num: int, kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        partition_records(faces, scheme, num, **kwargs)


def test_no_network(faces: list[Record], monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("partitioning tried to open a connection")

    expected = {scheme: partitions_for(faces, scheme) for scheme in SCHEMES}
    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    for scheme in SCHEMES:  # the same partitions, computed offline
        assert partitions_for(faces, scheme) == expected[scheme], scheme


def test_synthetic_faces_dirichlet_by_site(tmp_path: Path) -> None:
    synthesize_faces(tmp_path, 120, seed=0, image_size=64)
    faces = read_dataset("300w", tmp_path, "train").records
    parts = partition_records(faces, "dirichlet", 8, attribute="site", alpha=0.5)
    assert sorted(i for p in parts for i in p) == list(range(len(faces)))
    stats = partition_statistics(faces, parts, "site")
    sites = [face.attributes["site"] for face in faces]
    assert stats["num_assigned"] == len(faces) and stats["sizes"]["min"] >= 1
    assert stats["values"] == sorted(set(sites)) == ["afw", "helen", "lfpw"]  # ibug: test only
    for part, row in zip(parts, stats["partitions"], strict=True):
        assert row["size"] == len(part)
        assert row["counts"] == {s: sum(sites[i] == s for i in part) for s in stats["values"]}
    assert stats["mean_tv_distance"] > 0.1
    table = format_partition_table(stats)
    assert table.splitlines()[0].split()[:5] == ["partition", "size", *stats["values"]]
