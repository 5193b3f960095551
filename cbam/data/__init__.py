"""Data: the embedded Cluttered Digits dataset, ImageNet-style folders and CIFAR pickles behind one
``--data`` argument (:func:`build_dataset`), and their standard transforms."""
from .cifar import CIFARDataset
from .datasets import DEFAULT_EMBEDDED_ROOT, DataSpec, build_dataset, parse_data, prepare_embedded
from .embedded import (add_clutter, add_noise, build_embedded, digit_sources, load_boxes, random_box,
                       render_digit, render_sample, source_indices)
from .folder import CorruptImageError, EmbeddedDataset, ImageFolderDataset
from .transforms import DATA_KINDS, DATA_STATS, DEFAULT_IMAGE_SIZE, build_transforms

__all__ = [
    "CIFARDataset",
    "CorruptImageError",
    "DATA_KINDS",
    "DATA_STATS",
    "DEFAULT_EMBEDDED_ROOT",
    "DEFAULT_IMAGE_SIZE",
    "DataSpec",
    "EmbeddedDataset",
    "ImageFolderDataset",
    "add_clutter",
    "add_noise",
    "build_dataset",
    "build_embedded",
    "build_transforms",
    "digit_sources",
    "load_boxes",
    "parse_data",
    "prepare_embedded",
    "random_box",
    "render_digit",
    "render_sample",
    "source_indices",
]
