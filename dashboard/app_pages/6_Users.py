"""Users (admins only): who has signed in, and their roles."""

import streamlit as st
import ui

from daam_store.access import Permission, Role, list_accounts, normalize_identity, parse_role, roles_table, set_role

actor = ui.require(Permission.MANAGE_ROLES)
store = ui.get_store()

st.title("Users")
st.write(
    "Roles: **viewer** browses, compares and downloads; **member** also generates, sweeps, tags what they made "
    "and cancels their own jobs; **admin** also registers models, manages roles and cancels anyone's jobs. "
    "Someone who signs in for the first time is listed here with the default role."
)
if not actor.team_mode:
    st.info("Single-user mode: no sign-in is configured, so these roles are not used yet.", icon="ℹ️")

with st.form("set_role"):
    identity = st.text_input("E-mail address (or sub:<id>) as the sign-in provider gives it")
    role = st.selectbox("Role", [role.value for role in Role], index=1)
    changed = st.form_submit_button("Set role")
if changed:
    with ui.errors_as_messages():
        set_role(store, identity, parse_role(role), by=actor)
        st.success("Role set.")
        st.text(f"{normalize_identity(identity)}: {role}")

with ui.errors_as_messages():
    rows = roles_table(list_accounts(store))
    if rows:
        st.dataframe(rows, hide_index=True)
    else:
        st.info("Nobody is listed yet.", icon="ℹ️")
