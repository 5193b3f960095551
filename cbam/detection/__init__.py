"""Object detectors with CBAM (paper Sec. 4.4-4.5) and their metrics: Faster R-CNN + FPN with attention in
the backbone (Table 6), SSD and StairNet with attention before every classifier (Table 7), COCO mAP and
VOC07 mAP@.5. Detection data lives in :mod:`cbam.data`; training and evaluation in
:mod:`cbam.experiments.detection`.
"""
from .faster_rcnn import faster_rcnn
from .metrics import coco_map, voc07_map
from .ssd import ssd
from .stairnet import StairNetTopDown, stairnet

__all__ = [
    "StairNetTopDown",
    "coco_map",
    "faster_rcnn",
    "ssd",
    "stairnet",
    "voc07_map",
]
