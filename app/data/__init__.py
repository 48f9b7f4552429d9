"""Datasets for the playground: built-in generators, the digits, and CSV uploads.

X is float64 (n, dims); y is int64 class indices (n,) or float64 targets (n,).
"""

from app.data.csv_upload import CsvError, parse_csv
from app.data.datasets import DATASETS, Dataset, DatasetSpec, make_dataset, split_train_test

__all__ = ["DATASETS", "Dataset", "DatasetSpec", "make_dataset", "split_train_test", "CsvError", "parse_csv"]
