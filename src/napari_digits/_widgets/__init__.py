"""Thin napari dock widgets, one module per capability (Qt lives only here)."""
