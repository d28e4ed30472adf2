"""csxa_train: train and evaluate classifiers on published CSXA variant shards."""

__version__ = "0.1.0"
