"""The dashboard's page logic, one module per page, without Streamlit: the pages in dashboard/app_pages/ call these
functions and only draw what they return, so the logic is tested directly (tests/test_dashboard_app.py).

    common          Markdown escaping, overlays, colour scales, cards: what several pages share
    home            Home: what is in the store
    generate        Generate: batches, sweep grids, model choices
    explore         Explore: gallery filters and pages, a generation's details and downloads
    models          Models: built-in, families, registered models
    compare         Compare's view model: selections and the tables behind every chart (pandas)
    compare_charts  Compare's Plotly figures
"""
