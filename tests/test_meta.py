import numpy as np
import pytest

from fedland.data.meta import DATASETS, FACE_300W, dataset_meta

# The 300-W flip permutation exactly as DATA.md gives it.
PERM_300W = [
    *range(16, -1, -1),
    *range(26, 16, -1),
    27,
    28,
    29,
    30,
    35,
    34,
    33,
    32,
    31,
    45,
    44,
    43,
    42,
    47,
    46,
    39,
    38,
    37,
    36,
    41,
    40,
    54,
    53,
    52,
    51,
    50,
    49,
    48,
    59,
    58,
    57,
    56,
    55,
    64,
    63,
    62,
    61,
    60,
    67,
    66,
    65,
]


@pytest.mark.parametrize("meta", DATASETS.values(), ids=DATASETS.keys())
def test_flip_tables_are_symmetric_and_involutive(meta):
    perm = meta.flip_permutation
    assert sorted(perm) == list(range(meta.num_landmarks))
    assert np.array_equal(perm[perm], np.arange(meta.num_landmarks))
    partners = dict(meta.flip_pairs)
    assert len({i for pair in meta.flip_pairs for i in pair}) == 2 * len(partners)


@pytest.mark.parametrize("meta", DATASETS.values(), ids=DATASETS.keys())
def test_skeleton_and_normalisers_index_real_landmarks(meta):
    for a, b in meta.skeleton:
        assert 0 <= a < meta.num_landmarks and 0 <= b < meta.num_landmarks
    assert all(0 <= i < meta.num_landmarks for i in meta.normaliser)


def test_300w_flip_permutation_matches_the_published_table():
    assert FACE_300W.flip_permutation.tolist() == PERM_300W


def test_landmark_counts():
    counts = {name: meta.num_landmarks for name, meta in DATASETS.items()}
    assert counts == {"mpii": 16, "lsp": 14, "300w": 68, "wflw": 98, "coco": 17}


def test_unknown_dataset_lists_the_known_ones():
    with pytest.raises(ValueError, match="known: 300w, coco, lsp, mpii, wflw"):
        dataset_meta("afw")
