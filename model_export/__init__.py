"""Offline training and export of textserve models (needs the export extra)."""
