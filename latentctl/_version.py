"""latentctl's version: a leaf, so that the modules that stamp files with it (checkpoint, store,
assessor, gan_encoder) need not import the API package above them."""

__version__ = "0.1.0"
