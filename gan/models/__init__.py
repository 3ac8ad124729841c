"""Model families found by name. Adding a family is a new module and one entry here."""

from __future__ import annotations

import importlib

from gan.errors import GanError

# name -> "module:Class"; imported lazily so a family's import cost is paid only when used.
FAMILIES: dict[str, str] = {
    "dcgan": "gan.models.dcgan:DCGAN",
    "cyclegan": "gan.models.cyclegan:CycleGAN",
    "stylegan2": "gan.models.stylegan2.family:StyleGAN2",
    "biggan": "gan.models.biggan.family:BigGAN",
    "r3gan": "gan.models.r3gan.family:R3GAN",
}


def get_family(name: str):
    if name not in FAMILIES:
        known = ", ".join(sorted(FAMILIES))
        raise GanError(f"model family {name!r} is not known; choose one of: {known}")
    module, cls = FAMILIES[name].split(":")
    return getattr(importlib.import_module(module), cls)


def family_config_class(name: str):
    return get_family(name).config_class
