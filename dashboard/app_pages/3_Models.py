"""Models: the registered models with their generation counts; add a hub id or a local folder."""

import streamlit as st
import ui

from daam_store.access import Permission
from daam_store.views.models import builtin_model_table, family_table, model_table, register_model

actor = ui.require(Permission.BROWSE)

st.title("Models")

store = ui.get_store()

st.subheader("Built-in models")
st.write("Small Stable Diffusion models shipped inside the package: they run on a CPU with no download.")
with ui.errors_as_messages():
    st.dataframe(builtin_model_table(), hide_index=True)
st.caption(
    "Targets of `daam-store eval` on held-out prompts, counted on maps of the original DAAM's layers; the next "
    "column scores the same images with the UNet's mid block averaged into the maps (`--mid-block`), for "
    "comparison. Each model folder's MODEL_CARD.md has the figures."
)

st.subheader("Registered models")
registered = st.empty()  # filled after the form below, so a model added just now is listed

st.subheader("Add a model")
if actor.may(Permission.REGISTER_MODELS):
    with st.form("add_model"):
        name = st.text_input(
            "Hub id or local diffusers folder",
            placeholder="e.g. stabilityai/stable-diffusion-xl-base-1.0 or /data/models/my-sd",
        )
        added = st.form_submit_button("Load and register")
    if added:
        with ui.errors_as_messages():
            model = register_model(store, ui.load_model, name, actor)
            st.success("Registered: it is now in the Generate page's model list.")
            st.text(f"{model.name} · {model.family} · {model.source} · revision {model.revision}")
else:
    st.caption("Admins add models.")

with registered.container(), ui.errors_as_messages():
    rows = model_table(store)
    if rows:
        st.dataframe(rows, hide_index=True)
    else:
        st.info("No model is registered yet: generating an image or adding one below registers it.", icon="ℹ️")

st.subheader("Families")
st.write("The kinds of pipeline daam-store traces; a model's folder (its model_index.json) tells which one it is.")
st.dataframe(family_table(), hide_index=True)
