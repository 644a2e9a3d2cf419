"""latentctl: train an image generative model on your pictures and explore its latent space."""

__version__ = "0.1.0"
