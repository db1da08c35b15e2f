"""daam-store dashboard: `streamlit run dashboard/Home.py`.

The one entry point: it sets up what every page shares (page config, the store, the sidebar) once, then runs
the page the user chose. Pages are the files in app_pages/, listed here in the order of the navigation (not in
a folder named pages/: Streamlit would then also build its older directory navigation around this one).
"""

import streamlit as st
import ui

PAGES = [
    st.Page("app_pages/0_Overview.py", title="Home", icon=":material/home:", default=True),
    st.Page("app_pages/1_Generate.py", title="Generate", icon=":material/auto_awesome:"),
    st.Page("app_pages/2_Explore.py", title="Explore", icon=":material/search:"),
    st.Page("app_pages/3_Models.py", title="Models", icon=":material/extension:"),
    st.Page("app_pages/4_Compare.py", title="Compare", icon=":material/compare_arrows:"),
]

page = st.navigation(PAGES)
ui.setup_page(page.title)
store = ui.get_store()  # opened once per process; an unreachable database stops every page with one line
ui.show_sidebar(store)
page.run()
