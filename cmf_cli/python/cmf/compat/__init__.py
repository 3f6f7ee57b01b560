"""Layers that let code written for other metadata tools log into a cmf repository."""
