"""StyleGAN2 networks (Karras et al. 2020, as in NVlabs/stylegan2-ada-pytorch) in plain PyTorch.

``Generator`` = ``MappingNetwork`` + ``SynthesisNetwork`` ("skip" outputs);
``Discriminator`` is the "resnet" architecture with a minibatch-stddev epilogue;
``regularizers`` holds the path-length penalty and style mixing.
"""

from gan.models.stylegan2.discriminator import Discriminator, MinibatchStdLayer
from gan.models.stylegan2.generator import Generator
from gan.models.stylegan2.mapping import MappingNetwork
from gan.models.stylegan2.regularizers import PathLengthPenalty, mix_styles
from gan.models.stylegan2.synthesis import SynthesisNetwork

__all__ = [
    "Discriminator",
    "Generator",
    "MappingNetwork",
    "MinibatchStdLayer",
    "PathLengthPenalty",
    "SynthesisNetwork",
    "mix_styles",
]
