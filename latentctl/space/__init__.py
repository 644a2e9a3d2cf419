"""The latent space: the store of latents, vector arithmetic, an opened model (session), directions
found or learned (SeFa, GANSpace, walks, GANalyze), projection of photos into latents, rendering."""
