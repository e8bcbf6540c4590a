"""Small independent reference computations shared by several test files (not the library's)."""

import numpy as np


def iou(a: np.ndarray, b: np.ndarray) -> float:
    """Intersection over union of two masks (nonzero = foreground); 0 when both are empty."""
    a, b = a > 0, b > 0
    return float((a & b).sum() / max((a | b).sum(), 1))
