"""Object detection with CBAM (paper Sec. 4.4-4.5): Faster R-CNN (Table 6), SSD and StairNet (Table 7)."""
