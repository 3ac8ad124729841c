"""Building blocks shared by the model families (one small module per kind of block).

Import from the module that defines a block, e.g. ``from gan.models.layers.init import
dcgan_init``; this package file stays empty so that importing one block does not import
every other.
"""
