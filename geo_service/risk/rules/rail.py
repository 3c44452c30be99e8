"""Rule kinds for rail (being written)."""
