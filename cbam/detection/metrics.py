"""Detection metrics: COCO mAP (pycocotools) and PASCAL VOC2007 11-point mAP@.5.

Inputs are lists, one entry per image, in the order of the dataset:
- ``predictions``: dicts with ``boxes`` (D, 4) xyxy, ``scores`` (D,), ``labels`` (D,) in 1..K;
- ``targets``: dicts with ``boxes`` (N, 4) xyxy, ``labels`` (N,), optional ``difficult`` (N,) bool and
  ``size`` (H, W) (as :class:`cbam.data.DetectionDataset` returns them).

Difficult objects are ignored by both metrics: the VOC07 metric as the devkit does, and the COCO metric
by passing them as ``iscrowd`` regions (a detection inside one is neither a true nor a false positive).
"""
from __future__ import annotations

import contextlib
import io
import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from torch import Tensor

from .._optional import require

__all__ = ["box_iou_np", "voc07_ap", "voc07_map", "coco_map"]


def _np(x: Tensor | np.ndarray | Sequence[Any], dtype: Any = np.float64) -> np.ndarray:
    if isinstance(x, Tensor):
        x = x.detach().cpu().numpy()
    return np.asarray(x, dtype=dtype)


def box_iou_np(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of (A, 4) and (B, 4) xyxy boxes in continuous coordinates -> (A, B).

    The VOC devkit adds 1 to widths (inclusive pixel indices); our VOC loader already turns
    ``[xmin, xmax]`` into ``[xmin - 1, xmax]``, so this equals the devkit's IoU on VOC data.
    """
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.prod((rb - lt).clip(min=0), axis=2)
    area_a = np.prod(a[:, 2:] - a[:, :2], axis=1)
    area_b = np.prod(b[:, 2:] - b[:, :2], axis=1)
    return inter / np.maximum(area_a[:, None] + area_b[None, :] - inter, np.finfo(np.float64).eps)


def voc07_ap(recall: np.ndarray, precision: np.ndarray) -> float:
    """VOC2007 11-point AP: mean over t in {0, 0.1, ..., 1} of the best precision at recall >= t."""
    points = [precision[recall >= t].max() if (recall >= t).any() else 0.0 for t in np.linspace(0, 1, 11)]
    return float(np.mean(points))


def _class_pr(predictions: Sequence[dict[str, Any]], targets: Sequence[dict[str, Any]], label: int,
              iou_thresh: float) -> tuple[np.ndarray, np.ndarray, int]:
    """Recall and precision curves of one class over the ranked detections, and its positive count."""
    gts, npos = [], 0
    for t in targets:
        keep = _np(t["labels"], np.int64) == label
        difficult = _np(t.get("difficult", np.zeros(len(keep))), bool)[keep]
        gts.append((_np(t["boxes"]).reshape(-1, 4)[keep], difficult, np.zeros(int(keep.sum()), bool)))
        npos += int((~difficult).sum())
    image_idx, scores, boxes = [], [], []
    for i, p in enumerate(predictions):
        keep = _np(p["labels"], np.int64) == label
        image_idx += [i] * int(keep.sum())
        scores.append(_np(p["scores"])[keep])
        boxes.append(_np(p["boxes"]).reshape(-1, 4)[keep])
    scores_all = np.concatenate(scores) if scores else np.zeros(0)
    boxes_all = np.concatenate(boxes) if boxes else np.zeros((0, 4))
    order = np.argsort(-scores_all, kind="stable")
    tp, fp = np.zeros(len(order)), np.zeros(len(order))
    for rank, d in enumerate(order):
        gt_boxes, difficult, used = gts[image_idx[d]]
        if len(gt_boxes) == 0:
            fp[rank] = 1
            continue
        ious = box_iou_np(boxes_all[d : d + 1], gt_boxes)[0]
        j = int(ious.argmax())
        if ious[j] <= iou_thresh:  # the devkit's test is ovmax > 0.5
            fp[rank] = 1
        elif difficult[j]:
            continue  # matched a difficult object: neither true nor false positive
        elif not used[j]:
            tp[rank], used[j] = 1, True
        else:
            fp[rank] = 1  # duplicate detection
    tp, fp = np.cumsum(tp), np.cumsum(fp)
    recall = tp / max(npos, 1)
    precision = tp / np.maximum(tp + fp, np.finfo(np.float64).eps)
    return recall, precision, npos


def voc07_map(
    predictions: Sequence[dict[str, Any]], targets: Sequence[dict[str, Any]], num_classes: int,
    iou_thresh: float = 0.5,
) -> dict[str, Any]:
    """PASCAL VOC2007 mAP@``iou_thresh`` with the 11-point interpolated AP and difficult objects ignored.

    Written here because no maintained library computes the 2007 11-point variant with difficult
    flags; it follows the devkit's ``VOCevaldet`` (py-faster-rcnn ``voc_eval(use_07_metric=True)``).

    Args:
        predictions, targets: per image, see the module docstring.
        num_classes: K foreground classes (labels 1..K).
        iou_thresh: a detection is a true positive when its best IoU with an object exceeds this.

    Returns:
        ``{"map": float, "ap": [AP of class 1..K, NaN for classes without non-difficult objects]}``;
        ``map`` averages the classes that have objects (NaN if none has).
    """
    if len(predictions) != len(targets):
        raise ValueError(f"voc07_map: {len(predictions)} predictions for {len(targets)} images")
    aps = []
    for label in range(1, num_classes + 1):
        recall, precision, npos = _class_pr(predictions, targets, label, iou_thresh)
        aps.append(voc07_ap(recall, precision) if npos > 0 else math.nan)
    valid = [a for a in aps if not math.isnan(a)]
    return {"map": float(np.mean(valid)) if valid else math.nan, "ap": aps}


def coco_map(predictions: Sequence[dict[str, Any]], targets: Sequence[dict[str, Any]], num_classes: int) -> dict[str, float]:
    """COCO box mAP@[.5:.95], mAP@.5 and mAP@.75 from pycocotools' ``COCOeval`` (100 detections per image).

    Returns:
        ``{"map", "map_50", "map_75"}`` in [0, 1]; 0.0 when there are no detections at all, NaN when
        there are no (non-difficult) objects.
    """
    COCO = require("pycocotools.coco", "detect", "COCO mAP").COCO
    COCOeval = require("pycocotools.cocoeval", "detect", "COCO mAP").COCOeval

    if len(predictions) != len(targets):
        raise ValueError(f"coco_map: {len(predictions)} predictions for {len(targets)} images")
    images, annotations, detections = [], [], []
    for i, (p, t) in enumerate(zip(predictions, targets)):
        boxes = _np(t["boxes"]).reshape(-1, 4)
        h, w = t.get("size") or (float(boxes[:, 3].max(initial=1)), float(boxes[:, 2].max(initial=1)))
        images.append({"id": i, "height": h, "width": w})
        difficult = _np(t.get("difficult", np.zeros(len(boxes))), bool)
        for box, label, crowd in zip(boxes, _np(t["labels"], np.int64), difficult):
            x, y, bw, bh = box[0], box[1], box[2] - box[0], box[3] - box[1]
            annotations.append({
                "id": len(annotations) + 1, "image_id": i, "category_id": int(label), "iscrowd": int(crowd),
                "bbox": [float(x), float(y), float(bw), float(bh)], "area": float(bw * bh),
            })
        for box, score, label in zip(_np(p["boxes"]).reshape(-1, 4), _np(p["scores"]), _np(p["labels"], np.int64)):
            detections.append({
                "image_id": i, "category_id": int(label), "score": float(score),
                "bbox": [float(box[0]), float(box[1]), float(box[2] - box[0]), float(box[3] - box[1])],
            })
    if not any(not a["iscrowd"] for a in annotations):
        return {"map": math.nan, "map_50": math.nan, "map_75": math.nan}
    if not detections:
        return {"map": 0.0, "map_50": 0.0, "map_75": 0.0}
    with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints progress
        gt = COCO()
        gt.dataset = {"images": images, "annotations": annotations,
                      "categories": [{"id": k, "name": str(k)} for k in range(1, num_classes + 1)]}
        gt.createIndex()
        evaluator = COCOeval(gt, gt.loadRes(detections), iouType="bbox")
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    stats = [max(float(s), 0.0) for s in evaluator.stats[:3]]
    return {"map": stats[0], "map_50": stats[1], "map_75": stats[2]}

