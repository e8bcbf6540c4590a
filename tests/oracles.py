"""Small independent reference computations shared by several test files (not the library's)."""

import numpy as np


def iou(a: np.ndarray, b: np.ndarray) -> float:
    """Intersection over union of two masks (nonzero = foreground); 0 when both are empty."""
    a, b = a > 0, b > 0
    return float((a & b).sum() / max((a | b).sum(), 1))


def conic_fit_semi_axes(mask: np.ndarray) -> tuple[float, float]:
    """Semi-axes (a >= b, pixels) of the ellipse fitted to the outer boundary of a filled mask
    by a direct least-squares conic fit (Fitzgibbon, Pilu & Fisher 1999), in NumPy alone: an
    oracle independent of OpenCV's fitEllipse. Boundary = the centres of the foreground pixels
    with a background 4-neighbour (the points cv2.findContours traces)."""
    m = np.pad(mask > 0, 1)
    inner = m[1:-1, 1:-1]
    pts = []
    for dy, dx in ((-1, 0), (1, 0), (0, -1), (0, 1)):
        edge = inner & ~m[1 + dy:m.shape[0] - 1 + dy, 1 + dx:m.shape[1] - 1 + dx]
        ys, xs = np.nonzero(edge)
        pts.append(np.stack([xs, ys], axis=1))
    x, y = np.unique(np.concatenate(pts), axis=0).T.astype(np.float64)
    x0, y0 = x.mean(), y.mean()
    x, y = x - x0, y - y0
    d = np.stack([x * x, x * y, y * y, x, y, np.ones_like(x)], axis=1)
    s = d.T @ d
    c = np.zeros((6, 6))
    c[0, 2] = c[2, 0] = 2
    c[1, 1] = -1
    w, v = np.linalg.eig(np.linalg.solve(s, c))
    k = int(np.argmax(np.real(w)))  # the one positive eigenvalue
    A, B, C, D, E, F = np.real(v[:, k])
    # centre, then the quadratic form's eigenvalues give the axes
    M = np.array([[A, B / 2], [B / 2, C]])
    centre = np.linalg.solve(2 * M, [-D, -E])
    f0 = F + 0.5 * (D * centre[0] + E * centre[1])
    lam = np.linalg.eigvalsh(M)
    axes = np.sqrt(-f0 / lam)
    return float(axes.max()), float(axes.min())
