"""Training: `ahawam train` (autoencoder stage, then the policy with the autoencoder frozen)."""
