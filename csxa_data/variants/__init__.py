"""Variants: the seed paper's preprocessings (crop, colour, resize) built into WebDataset shards."""
