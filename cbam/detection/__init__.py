"""Object detection with CBAM (paper Sec. 4.4-4.5): Faster R-CNN + FPN with attention in the backbone
(Table 6), SSD and StairNet with attention before every classifier (Table 7), COCO / VOC / embedded
data, COCO mAP and VOC07 mAP@.5, and the detection task of the shared training engine.
"""
from .datasets import VOC_CLASSES, CocoDetectionDataset, DetectionDataset, VOCDetectionDataset, detection_collate
from .embedded import build_embedded_detection, embedded_detection_dataset
from .faster_rcnn import faster_rcnn
from .metrics import coco_map, voc07_map
from .ssd import ssd
from .stairnet import StairNetTopDown, stairnet

__all__ = [
    "VOC_CLASSES",
    "CocoDetectionDataset",
    "DetectionDataset",
    "StairNetTopDown",
    "VOCDetectionDataset",
    "build_embedded_detection",
    "coco_map",
    "detection_collate",
    "embedded_detection_dataset",
    "faster_rcnn",
    "ssd",
    "stairnet",
    "voc07_map",
]
