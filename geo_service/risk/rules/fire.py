"""Rule kinds for fire (being written)."""
