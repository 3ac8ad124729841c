"""R3GAN (Huang et al. 2024, brownvc/R3GAN): a plain modern ConvNet trained with RpGAN + R1 + R2.

- ``blocks``: the initialisation rule, the biased activation, the residual block, the
  resampling transitions and the 4x4 bases (R3GAN/Networks.py's layers);
- ``networks``: the generator and the discriminator, stage by stage;
- ``schedule``: the presets' cosine schedules (lr, Adam's beta2, gamma, EMA, augmentation);
- ``family``: the ganops family (config, phases, sampling).

Import from the module that defines a name; this file stays empty.
"""
