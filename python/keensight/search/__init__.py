"""Recognition over feature vectors: exact k-NN, PCA, sequential three-way
decisions over PCA granules, the HNSW index, and scikit-learn-style classifiers.

All inputs are float32 matrices (one row per vector); other float dtypes are
converted. Metrics: ``"l2"`` (squared Euclidean), ``"ip"`` (inner product, a
similarity: larger is closer), ``"cosine"`` (1 - cosine similarity), ``"l1"``,
``"chi2"`` (chi-squared distance for non-negative features).
"""
from __future__ import annotations

from ._index import Index
from ._flat import FlatIndex, knn
from ._hnsw import HNSWIndex
from ._pca import PCA
from ._sequential import SequentialClassifier, SequentialStats
from ._classifiers import KNeighborsClassifier, aggregate

__all__: list = ["Index", "knn", "FlatIndex", "PCA", "HNSWIndex", "SequentialClassifier", "SequentialStats",
                  "KNeighborsClassifier", "aggregate"]
