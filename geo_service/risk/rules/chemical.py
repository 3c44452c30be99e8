"""Rule kinds for chemical (being written)."""
