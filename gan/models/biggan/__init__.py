"""BigGAN (Brock et al. 2019) networks as plain modules.

- ``arch``: channel plans per resolution (the official G_arch / D_arch facts);
- ``blocks``: residual up / down blocks and orthogonal initialisation;
- ``generator`` / ``discriminator``: the two networks;
- ``regularisation``: orthogonal regularisation as a loss;
- ``sampling``: truncated-normal latents.

Import from the module that defines a name; this file stays empty.
"""
