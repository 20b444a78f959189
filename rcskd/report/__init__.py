"""Figures (no I/O), the comparison table, the report page and the model card."""
