"""Data: the dataset registry, splits, views and forget requests."""

from unlearnkit.data.datasets import DATASETS, Dataset, DatasetSpec, load_dataset
from unlearnkit.data.splits import DataSplit, ForgetRequest, Splits, View, split_dataset

__all__ = [
    "DATASETS",
    "DataSplit",
    "Dataset",
    "DatasetSpec",
    "ForgetRequest",
    "Splits",
    "View",
    "load_dataset",
    "split_dataset",
]
