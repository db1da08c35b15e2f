"""daam-store dashboard: `streamlit run dashboard/Home.py`.

The one entry point: it sets up what every page shares (page config, the store, the sign-in gate, the sidebar)
once, then runs the page the user chose. Pages are the files in app_pages/, listed here in the order of the
navigation (not in a folder named pages/: Streamlit would then also build its older directory navigation around
this one). Each page is listed only for the roles that may open it, and checks the role again itself.
"""

import streamlit as st
import ui

from daam_store.access import Permission

PAGES = [  # (file, title, icon, what the role must allow)
    ("app_pages/0_Overview.py", "Home", ":material/home:", Permission.BROWSE),
    ("app_pages/1_Generate.py", "Generate", ":material/auto_awesome:", Permission.GENERATE),
    ("app_pages/2_Explore.py", "Explore", ":material/search:", Permission.BROWSE),
    ("app_pages/3_Models.py", "Models", ":material/extension:", Permission.BROWSE),
    ("app_pages/4_Compare.py", "Compare", ":material/compare_arrows:", Permission.BROWSE),
    ("app_pages/5_Jobs.py", "Jobs", ":material/queue:", Permission.BROWSE),
    ("app_pages/6_Users.py", "Users", ":material/group:", Permission.MANAGE_ROLES),
]


def sign_in() -> None:
    st.title("daam-store")
    st.write("This dashboard is shared by a team: sign in to use it.")
    st.button("Sign in", type="primary", on_click=st.login)


def no_role() -> None:
    st.title("daam-store")
    st.text(f"You are signed in as {ui.current_actor().identity}, but have no role here yet.")
    st.write("Ask an admin of this dashboard to give you one (viewer, member or admin).")


store = ui.get_store()  # opened once per process; an unreachable database stops every page with one line
actor = ui.signed_in_actor(store)
if actor is None:
    pages = [st.Page(sign_in, title="Sign in", icon=":material/login:", default=True)]
else:
    pages = [
        st.Page(path, title=title, icon=icon, default=index == 0)
        for index, (path, title, icon, permission) in enumerate(PAGES)
        if actor.may(permission)
    ] or [st.Page(no_role, title="No access", icon=":material/lock:", default=True)]

page = st.navigation(pages)
ui.setup_page(page.title)
if actor is not None:
    ui.start_executor(store)
    ui.show_sidebar(store, actor)
page.run()
