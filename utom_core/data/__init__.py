"""Training data: lazy domain images (``images``), fitting (``fitting``), tiles (``sampling``)."""
