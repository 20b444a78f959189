"""Classification metrics (clinical view) and model complexity."""
