"""Figures (no I/O), Grad-CAM maps, and the report page."""
