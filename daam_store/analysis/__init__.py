"""Metrics over stored heat maps: per-map statistics, word overlap, seed stability, model agreement,
prompt edits, and the data shaping behind the dashboard's Compare page.

Every metric works on plain numpy arrays so it can be tested by hand; `compare` is the only module
that reads the store.
"""
