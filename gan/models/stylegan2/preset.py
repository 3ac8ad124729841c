"""`train.model.preset: auto`: stylegan2-ada-pytorch's `--cfg=auto`, sized from the data.

The official rule (its train.py), per resolution `res` and `gpus` data-parallel devices:
batch max(min(gpus * min(4096 // res, 32), 64), gpus); minibatch-stddev group
min(batch / gpus, 4); channel_base 16384 below 512 px and 32768 from 512, channel_max 512;
2 mapping layers; lr 0.0025 (0.002 from 1024 px); R1 gamma 0.0002 * res^2 / batch; G_ema
half-life batch * 10 / 32 kimg with its ramp-up of 0.05. Two differences, both because
ganops splits the batch equally over its ranks and lets a given batch size the rest: the
derived batch is rounded down to a multiple of `gpus`, and the group, gamma and half-life
follow the batch the run trains with (the official script keeps the derived batch's when
`--batch` overrides it).
"""

from __future__ import annotations

from typing import Any

from gan.models.family import DataInfo


def auto_batch(resolution: int, gpus: int) -> int:
    batch = max(min(gpus * min(4096 // resolution, 32), 64), gpus)
    return batch - batch % gpus


def auto(data: DataInfo, batch: int | None, gpus: int) -> dict[str, Any]:
    """The train keys `--cfg=auto` sets, for `data`'s resolution and the run's batch."""
    res = data.resolution
    batch = auto_batch(res, gpus) if batch is None else batch
    lr = 0.002 if res >= 1024 else 0.0025
    return {
        "batch_size": batch,
        "model.channel_base": 32768 if res >= 512 else 16384,
        "model.channel_max": 512,
        "model.mapping_layers": 2,
        "model.mbstd_group_size": max(1, min(batch // gpus, 4)),
        "model.r1_gamma": res * res / (5000 * batch),  # 0.0002 * res^2 / batch, rounded once
        "model.ema_kimg": batch * 10 / 32,
        "model.ema_rampup": 0.05,
        "optim.g_lr": lr,
        "optim.d_lr": lr,
    }
