"""Home: what is in the store, the latest generations, where the database is and how to start."""

import streamlit as st
import ui

from daam_store.access import Permission
from daam_store.jobs import executor_status
from daam_store.views.common import enlarge, escape_markdown
from daam_store.views.home import single_user_note, store_overview

actor = ui.require(Permission.BROWSE)

st.title("daam-store")
st.write(
    "What does each word of a prompt do to a Stable Diffusion image? DAAM traces the cross-attention "
    "between every word and every pixel while the image is generated and turns it into one heat map per "
    "word. Every traced generation lands in a database, ready to browse and compare."
)

store = ui.get_store()
if not actor.team_mode:
    st.caption(single_user_note(st.get_option("server.address")))
with ui.errors_as_messages():
    overview = store_overview(store, latest=8)

    columns = st.columns(4)
    for column, (label, value) in zip(columns, overview.counts.items(), strict=True):
        column.metric(label, value)
    st.text(f"Database: {overview.database}")
    st.text(executor_status(store).line())

    if overview.counts["Generations"] == 0:
        st.info("The store is empty: generate a first image on the Generate page.", icon="ℹ️")
    else:
        st.subheader("Latest generations")
        for start in range(0, len(overview.latest), 4):
            columns = st.columns(4)
            for column, card in zip(columns, overview.latest[start : start + 4], strict=False):
                with column:
                    st.image(enlarge(card.image, 160), width=160)
                    st.text(card.prompt)
                    if card.problem:
                        st.text(card.problem)
                    st.page_link(
                        "app_pages/2_Explore.py",
                        label=f"#{card.generation_id} · seed {card.seed} · {escape_markdown(card.model)}",
                        query_params={"generation": card.generation_id},
                    )

st.subheader("How to start")
st.markdown(
    """
1. **Generate** — pick a model (the built-in `sd1-tiny` / `sd2-tiny` / `sdxl-tiny` run on a CPU with no download,
   or give a hub id or a local diffusers folder), write prompts, choose seeds, press *Generate*.
2. **Explore** — filter what is stored by prompt, word, model, seed, date, author or tag; open a
   generation to see each word's heat map, its tokens and statistics, and download the files.
3. **Models** — see the registered models and add your own.

The database is `$DAAM_STORE_URL` when set (e.g. `postgresql+psycopg://user@host/daam`), otherwise a
local SQLite file. From a shell: `daam "a dog on a bench" --store` stores a generation too.
"""
)
