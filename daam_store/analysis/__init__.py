"""Metrics over heat maps, on plain numpy arrays (no store, no Streamlit): per-map statistics, word overlap,
seed stability, model agreement, prompt edits. The dashboard's Compare page shapes them into tables and charts
in `daam_store.views.compare` and `daam_store.views.compare_charts`.
"""
