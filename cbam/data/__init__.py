"""Data: the embedded Cluttered Digits dataset, ImageNet-style folders and CIFAR pickles."""
from .embedded import build_embedded, digit_sources, load_boxes, render_digit

__all__ = ["build_embedded", "digit_sources", "load_boxes", "render_digit"]
