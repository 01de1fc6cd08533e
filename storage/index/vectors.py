"""Unit vectors: what every embedding gives the store."""

from __future__ import annotations

import numpy as np


def normalise(vectors: np.ndarray) -> np.ndarray:
    """Each row divided by its length (a zero row stays zero). Unit vectors make the inner product the cosine, which
    is cheaper to compute in SQL."""
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    norms[norms == 0] = 1.0
    return vectors / norms
