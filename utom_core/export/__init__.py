"""Sharing utom models: BioImage Model Zoo packages, and generators of the authors' code."""
