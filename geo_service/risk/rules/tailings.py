"""Rule kinds for tailings (being written)."""
