"""daam-store dashboard: `streamlit run dashboard/Home.py`.

The one entry point: it sets up what every page shares (page config, the store, the sidebar) once, then runs
the page the user chose. Pages are the files in pages/, listed here in the order of the navigation.
"""

import streamlit as st
import ui

PAGES = [
    st.Page("pages/0_Overview.py", title="Home", icon="🏠", default=True),
    st.Page("pages/1_Generate.py", title="Generate", icon="✨"),
    st.Page("pages/2_Explore.py", title="Explore", icon="🔍"),
    st.Page("pages/3_Models.py", title="Models", icon="🧩"),
    st.Page("pages/4_Compare.py", title="Compare", icon="📊"),
]

page = st.navigation(PAGES)
ui.setup_page(page.title)
store = ui.get_store()  # opened once per process; an unreachable database stops every page with one line
ui.show_sidebar(store)
page.run()
