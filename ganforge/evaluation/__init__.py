"""Evaluation: metrics (FID, KID, Inception Score), feature extractors, the discriminator
linear probe, latent walks and latent vector arithmetic."""
