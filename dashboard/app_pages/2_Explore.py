"""Explore: filter and page through stored generations; open one to inspect its word heat maps.

`?generation=<id>` in the URL opens that generation directly (the Home, Generate and Compare pages link
here that way); the filters and the gallery's page are in the URL too.
"""

import maps_ui
import streamlit as st
import ui
from url_state import UrlState

from daam_store.access import Permission
from daam_store.errors import UserError
from daam_store.views.common import enlarge, escape_markdown, unmapped_words_note, word_overlays
from daam_store.views.explore import (
    GALLERY_PAGE_SIZE,
    experiment_zip,
    filter_options,
    gallery_count,
    gallery_filter,
    gallery_page,
    generation_details,
    layer_overlays,
    parse_generation_id,
    step_overlays,
    token_rows,
    word_overlay_png,
)
from daam_store.views.tagging import add_tags, may_tag
from daam_store.wording import plural

ANY = "(any)"
ui.require(Permission.BROWSE)

URL = UrlState("explore")


def finer_maps(overlays, per_row: int, cmap: str, missing: str) -> None:
    """A word's per-layer or per-step maps with their colour scale, or a line saying why there are none."""
    if overlays:
        ui.show_overlays(overlays, per_row=per_row, width=128)
        maps_ui.colour_scale(cmap)
    else:
        st.info(missing, icon="ℹ️")


def open_generation(generation_id: int) -> None:
    st.query_params["generation"] = str(generation_id)


def close_generation() -> None:
    st.query_params.pop("generation", None)


def sidebar_filters(store):
    """The filters, drawn on every run (also beside one generation) so they keep their values; they live in
    the URL, so Back and a copied link return to the same listing."""
    options = filter_options(store)
    with st.sidebar:
        st.header("Filters")
        prompt_text = URL.text_input("Prompt contains", "prompt")
        word = URL.text_input("Word in the prompt", "word")
        models = URL.multiselect("Models", list(options.models), "models", encode=lambda label: options.models[label])
        seeds = URL.text_input("Seeds", "seeds", help="Numbers and ranges, e.g. `0, 3, 10-12`.")
        days = URL.day_range("Created between (UTC days)", "days")
        author = URL.choice(st.selectbox, "Author", [ANY, *options.authors], "author")
        tag = URL.choice(st.selectbox, "Tag", [ANY, *options.tags], "tag")
    try:
        filters = gallery_filter(
            prompt_contains=prompt_text,
            word=word,
            model_ids=[options.models[label] for label in models],
            seeds=seeds,
            days=days,
            author=None if author == ANY else author,
            tag=None if tag == ANY else tag,
        )
    except UserError as error:  # said beside the filters; a generation opened by its link still shows
        with st.sidebar:
            ui.show_error(error)
        filters = None
    return filters, options.any_stored


def show_gallery(store, filters, any_stored: bool) -> None:
    if filters is None:
        return
    total = gallery_count(store, filters)
    if total == 0:
        if any_stored:
            st.info("No generations match these filters.", icon="ℹ️")
        else:
            st.info("No generations in the store yet: make some on the Generate page.", icon="ℹ️")
        return
    pages = (total + GALLERY_PAGE_SIZE - 1) // GALLERY_PAGE_SIZE
    count_column, page_column = st.columns([3, 1])
    with page_column:
        page = URL.page_number(f"Page (of {pages})", "page", pages)
    count_column.text(plural(total, "generation"))
    cards = gallery_page(store, filters, page=page, page_size=GALLERY_PAGE_SIZE)
    for start in range(0, len(cards), 4):
        for column, card in zip(st.columns(4), cards[start : start + 4], strict=False):
            with column, st.container(border=True):
                st.image(enlarge(card.image, 192), width=192)
                st.text(card.prompt)
                if card.problem:
                    st.text(card.problem)
                st.text(f"#{card.generation_id} · seed {card.seed} · {card.model}")
                st.button(
                    "Open", key=f"open-{card.generation_id}", on_click=open_generation, args=(card.generation_id,)
                )


def tag_form(store, generation_id: int) -> None:
    with st.expander("Add tags"), st.form("add_tags", border=False):
        text = st.text_input("Add tags, comma-separated", key="new_tags")
        if st.form_submit_button("Add tags"):
            with ui.errors_as_messages():
                added = add_tags(store, generation_id, text, ui.current_actor())
                st.success(escape_markdown(f"Tagged: {', '.join(added)}"))  # listed above from the next run on


def show_detail(store, generation_id: int) -> None:
    details = generation_details(store, generation_id)
    st.button("← Back to the gallery", on_click=close_generation)
    st.subheader(f"Generation #{generation_id}")
    st.text(details.prompt)

    image_column, info_column = st.columns([1, 2])
    image_column.image(enlarge(details.image), width=256)
    info_column.dataframe(details.facts, hide_index=True, height=35 * (len(details.facts) + 1) + 3)  # no scrolling
    if may_tag(store, generation_id, ui.current_actor()):
        tag_form(store, generation_id)

    st.subheader("Word heat maps")
    experiment = details.experiment
    if experiment is None:
        st.info(details.maps_note, icon="ℹ️")  # what of the maps is stored and what is not
        ui.show_overlays(details.stored_overlays, per_row=6)
        return
    note = unmapped_words_note(experiment)
    if note:
        st.info(escape_markdown(note), icon="ℹ️")
    alpha, cmap = maps_ui.map_controls()
    overlays = word_overlays(experiment, alpha, cmap)
    ui.show_overlays(overlays, per_row=6)
    maps_ui.colour_scale(cmap)

    words = {overlay.word_idx: overlay for overlay in overlays}
    word_idx = st.selectbox(
        "Word to inspect (per layer, per step, download)",
        list(words),
        format_func=lambda index: f"{words[index].label} (word {index})",
    )
    statistics, tokens, layers, steps, downloads = st.tabs(
        ["Statistics", "Tokens", "Per layer", "Per step", "Downloads"]
    )
    with statistics:
        if details.word_statistics:
            st.dataframe(details.word_statistics, hide_index=True)
        else:
            st.info("No statistics were stored for this generation.", icon="ℹ️")
    with tokens:
        st.dataframe(token_rows(experiment), hide_index=True)
    with layers:
        finer_maps(
            layer_overlays(experiment, word_idx, alpha, cmap),
            4,
            cmap,
            "No per-layer maps were recorded for this generation.",
        )
    with steps:
        missing = "Per-step maps were not kept: tick “Keep per-step maps” when generating."
        finer_maps(step_overlays(experiment, word_idx, alpha, cmap), 6, cmap, missing)
    with downloads:
        st.download_button(
            "Overlay of the chosen word (PNG)",
            lambda: word_overlay_png(experiment, word_idx, cmap),  # drawn on click only
            help="The word's map over the image, with its colour scale beside it.",
            mime="image/png",
            file_name=f"generation-{generation_id}-word-{word_idx}.png",
        )
        st.download_button(
            "Experiment directory (zip)",
            lambda: experiment_zip(experiment, f"generation-{generation_id}"),  # built on click only
            mime="application/zip",
            file_name=f"generation-{generation_id}.zip",
        )


st.title("Explore")
store = ui.get_store()
with ui.errors_as_messages():
    filters, any_stored = sidebar_filters(store)
    requested = st.query_params.get("generation")
    if requested:
        show_detail(store, parse_generation_id(requested))
    else:
        show_gallery(store, filters, any_stored)
URL.publish()  # after an error too: the choices that led to it stay in the URL
