#!/usr/bin/env python3
"""Regenerates Tests/Fixtures/npy/: small arrays saved by numpy itself (the oracle for our .npy code)."""
import os
import numpy as np

out = os.path.join(os.path.dirname(__file__), "..", "..", "Tests", "Fixtures", "npy")
os.makedirs(out, exist_ok=True)
np.save(os.path.join(out, "f32_2x3.npy"),
        np.array([[1.5, -2.25, 0.0], [3.0e-8, 65504.0, -0.0]], dtype=np.float32))
np.save(os.path.join(out, "f16_4.npy"), np.array([1.0, -0.5, 65504.0, 6.1e-5], dtype=np.float16))
np.save(os.path.join(out, "i32_scalar_shape.npy"), np.arange(5, dtype=np.int32))
