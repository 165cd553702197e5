"""Datasets and everything that reads images: decoding, bad-image policy, lmdb key indexes,
prepared (pre-decoded) datasets and torchvision's standard sets."""
