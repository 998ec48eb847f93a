"""Data: the dataset registry, splits, views and forget requests."""

from unlearnkit.data import canaries as _canaries  # noqa: F401  (registers the 'canary' scenario)
from unlearnkit.data.datasets import DATASETS, Dataset, DatasetSpec, load_dataset
from unlearnkit.data.splits import DataSplit, ForgetRequest, Splits, View, split_dataset
from unlearnkit.data.text import TextDataset, Vocabulary, make_text_dataset

__all__ = [
    "DATASETS",
    "DataSplit",
    "Dataset",
    "DatasetSpec",
    "ForgetRequest",
    "Splits",
    "TextDataset",
    "View",
    "Vocabulary",
    "load_dataset",
    "make_text_dataset",
    "split_dataset",
]
