"""Media: safe image processing (processing.py) and storage at an origin (storage.py)."""
