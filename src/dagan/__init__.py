"""dagan — DaGAN++ depth-aware talking-head video generation."""

__version__ = "0.1.0"
