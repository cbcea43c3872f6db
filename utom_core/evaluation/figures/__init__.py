"""Figures drawn with Pillow: preview panels and overlays, line profiles, bench bar plots."""
