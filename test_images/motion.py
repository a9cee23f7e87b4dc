"""Patient repositioning and breathing between scans: a known, invertible scanner <-> body map.

``Motion`` maps scanner-frame LPS points to the body frame the anatomy is
defined in: p_body = B(R^T (p_scan - t)), where (R, t) is a rigid
repositioning and B(q) = q + u(q) a smooth breathing-like deformation whose
displacement grows towards the diaphragm.  ``to_scan`` inverts it (fixed-point
iteration, converges because |grad u| << 1).  Pure computation.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from test_images.shapes import rotation_matrix

LUNG_TOP_Z = 105.0
BREATH_SPAN_MM = 260.0


@dataclass(frozen=True)
class Motion:
    """Rigid rotation (degrees, about x, y, z) + translation (mm) + breathing amplitudes (mm)."""

    rotation_deg: tuple[float, float, float] = (0.0, 0.0, 0.0)
    translation_mm: tuple[float, float, float] = (0.0, 0.0, 0.0)
    breathing_mm: tuple[float, float, float] = (0.0, 0.0, 0.0)  # (lateral expansion, AP, craniocaudal)

    @property
    def rotation(self) -> np.ndarray:
        return rotation_matrix(tuple(np.deg2rad(self.rotation_deg)))

    @property
    def is_identity(self) -> bool:
        return not any(self.rotation_deg) and not any(self.translation_mm) and not any(self.breathing_mm)

    def _u(self, q: np.ndarray) -> np.ndarray:
        ax, ay, az = self.breathing_mm
        g = np.clip((LUNG_TOP_Z - q[..., 2]) / BREATH_SPAN_MM, 0.0, 1.0)
        g = g * g * (3 - 2 * g)  # smoothstep: 0 at the apex, 1 at the lung bases
        u = np.empty(q.shape, dtype=q.dtype)
        u[..., 0] = ax * g * (q[..., 0] / 150.0)
        u[..., 1] = ay * g
        u[..., 2] = az * g
        return u

    def to_body(self, p_scan: np.ndarray) -> np.ndarray:
        """Scanner-frame LPS (..., 3) -> body frame."""
        if self.is_identity:
            return p_scan
        p = np.asarray(p_scan)
        dt = p.dtype if p.dtype in (np.float32, np.float64) else np.float64
        r = self.rotation.astype(dt)
        t = np.asarray(self.translation_mm, dtype=dt)
        d = [p[..., 0] - t[0], p[..., 1] - t[1], p[..., 2] - t[2]]
        q = np.empty(p.shape, dtype=dt)
        for j in range(3):  # q = (p - t) @ R, written out (much faster than matmul on (N, 3))
            q[..., j] = d[0] * r[0, j] + d[1] * r[1, j] + d[2] * r[2, j]
        if any(self.breathing_mm):
            q += self._u(q)
        return q

    def to_scan(self, p_body: np.ndarray) -> np.ndarray:
        """Body frame (..., 3) -> scanner-frame LPS (inverse of :meth:`to_body`)."""
        p = np.asarray(p_body, dtype=float)
        if self.is_identity:
            return p
        q = p.copy()
        if any(self.breathing_mm):
            for _ in range(100):
                q_new = p - self._u(q)
                done = np.max(np.abs(q_new - q)) < 1e-10
                q = q_new
                if done:
                    break
        return q @ self.rotation.T + np.asarray(self.translation_mm, dtype=float)

    def as_truth(self) -> dict:
        return {
            "model": "p_body = B(R^T (p_scan - t)); B(q) = q + u(q); see test_images.motion.Motion",
            "rotation_deg_xyz": list(self.rotation_deg),
            "rotation_matrix": self.rotation.tolist(),
            "translation_mm": list(self.translation_mm),
            "breathing_mm": list(self.breathing_mm),
        }
