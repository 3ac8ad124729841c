"""The official presets' schedules (train.py, training/training_loop.py): every value moves
from its start to its end along half a cosine over `decay_kimg` thousand images, then
stays. They are functions of the images seen (steps x the global batch), which a
checkpoint's step fixes, so a resumed run continues them exactly.
"""

from __future__ import annotations

import math


def cosine(images: float, start: float, end: float, total: float) -> float:
    """`start` at 0 images, `end` from `total` images on, half a cosine between: the
    official cosine_decay_with_warmup without its (unused) warm-up and hold."""
    if images >= total:
        return end
    done = 0.5 * (1 - math.cos(math.pi * images / total))
    return start + done * (end - start)
