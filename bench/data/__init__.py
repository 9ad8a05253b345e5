"""Data sets: reading COCO in its official layout, and fetching it."""
