"""Rule kinds for roads (being written)."""
