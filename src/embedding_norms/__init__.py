"""Reproduction of 'On the Importance of Embedding Norms in Self-Supervised Learning'
(Draganov et al., ICML 2025). Library code; the figures and tables are built by `reproduce/`."""

__version__ = "0.1.0"
