"""Data for classification and detection behind one ``--data`` argument (:func:`parse_data`): the
embedded Cluttered Digits datasets, ImageNet-style folders, CIFAR pickles, VOC and COCO; their
standard transforms, and the evaluation preprocessing a model folder stores."""
from .cifar import CIFARDataset
from .datasets import (
    DEFAULT_EMBEDDED_DETECTION_ROOT,
    DEFAULT_EMBEDDED_ROOT,
    DataSpec,
    build_dataset,
    build_detection_dataset,
    check_data,
    parse_data,
    prepare_embedded,
)
from .detection import VOC_CLASSES, CocoDetectionDataset, DetectionDataset, VOCDetectionDataset, detection_collate
from .detection_transforms import DetectionAugment
from .embedded import (
    add_clutter,
    add_noise,
    build_embedded,
    digit_sources,
    load_boxes,
    random_box,
    render_digit,
    render_sample,
    source_indices,
)
from .embedded_detection import build_embedded_detection, embedded_detection_dataset
from .folder import CorruptImageError, EmbeddedDataset, ImageFolderDataset
from .transforms import DATA_KINDS, DATA_STATS, DEFAULT_IMAGE_SIZE, build_transforms, eval_preprocessing, eval_transform

__all__ = [
    "CIFARDataset",
    "CocoDetectionDataset",
    "CorruptImageError",
    "DATA_KINDS",
    "DATA_STATS",
    "DEFAULT_EMBEDDED_DETECTION_ROOT",
    "DEFAULT_EMBEDDED_ROOT",
    "DEFAULT_IMAGE_SIZE",
    "DataSpec",
    "DetectionAugment",
    "DetectionDataset",
    "EmbeddedDataset",
    "ImageFolderDataset",
    "VOCDetectionDataset",
    "VOC_CLASSES",
    "add_clutter",
    "add_noise",
    "build_dataset",
    "build_detection_dataset",
    "build_embedded",
    "build_embedded_detection",
    "build_transforms",
    "detection_collate",
    "digit_sources",
    "embedded_detection_dataset",
    "eval_preprocessing",
    "eval_transform",
    "load_boxes",
    "check_data",
    "parse_data",
    "prepare_embedded",
    "random_box",
    "render_digit",
    "render_sample",
    "source_indices",
]
