"""Compare: word attributions across prompts, seeds and models, word overlap, and per-step curves.

Each view has its filters, a Plotly chart and a CSV of the numbers behind it; a click on a point that
stands for one generation opens it in Explore. The numbers come from `daam_store.views.compare`. The view,
its filters and its choices live in the URL (`url_state`): Back returns to the same view, a link shares it.
"""

import maps_ui
import streamlit as st
import ui
from url_state import UrlState

from daam_store import rules
from daam_store.access import Permission
from daam_store.sweep import parse_seed_spec
from daam_store.views import compare
from daam_store.views import compare_charts as charts
from daam_store.views.common import escape_markdown, file_stem

ALL = "(all generations)"
VIEWS = ["Across prompts", "Across seeds", "Across models", "Word overlap", "Per step"]
ui.require(Permission.BROWSE)

URL = UrlState("compare")


@st.cache_data(show_spinner="Computing…", max_entries=256)
def table(function: str, version: tuple, *args):
    """A `compare` function's result, cached until the store changes (`version`)."""
    return getattr(compare, function)(ui.get_store(), *args)


def get(function: str, *args):
    return table(function, st.session_state["compare_version"], *args)


@st.cache_data(show_spinner=False, max_entries=128)
def draw(name: str, *args):
    """A `compare_charts` figure, cached: building a Plotly figure costs more than reading its data."""
    return getattr(charts, name)(*args)


def chart(figure, key: str) -> None:
    """Draw a chart; a click on a point that carries a generation id opens that generation in Explore."""
    event = st.plotly_chart(figure, key=key, on_select="rerun", selection_mode="points")
    generation_id = charts.clicked_generation(event)
    if generation_id is not None:
        st.switch_page("app_pages/2_Explore.py", query_params={"generation": generation_id})


def csv_button(frame, name: str) -> None:
    """`name` may hold a prompt's word: the file name keeps only safe characters of it."""
    st.download_button(
        "Download CSV", compare.to_csv(frame), file_name=f"{file_stem(name)}.csv", mime="text/csv", key=f"csv_{name}"
    )


def sidebar(tag: str | None, options: compare.CompareOptions) -> tuple[compare.Selection, str | None]:
    with st.sidebar:
        models = URL.multiselect(
            "Models", list(options.models), "models", format_func=options.models.get, help="None = all."
        )
        prompts = URL.multiselect(
            "Prompts", list(options.prompts), "prompts", format_func=options.prompts.get, help="None = all."
        )
        seeds_text = URL.text_input("Seeds", "seeds", help="Numbers and ranges, e.g. `0-7, 10`. Empty = all.")
        word = URL.choice(st.selectbox, "Word", options.words, "word", help="The word the charts follow.")
        rule = options.rules[0] if options.rules else None  # maps of two rules are never compared
        if len(options.rules) > 1:
            rule = URL.choice(st.selectbox, "Maps made with", options.rules, "rule", format_func=rules.DESCRIPTIONS.get)
    seeds = tuple(parse_seed_spec(seeds_text)) if seeds_text.strip() else ()
    return compare.Selection(tag, tuple(models), tuple(prompts), seeds, rule), word


def across_prompts(selection: compare.Selection, word: str) -> None:
    which = URL.choice(st.radio, "Words", ["The chosen word", "Every word"], "words", horizontal=True)
    if which == "Every word":
        frame = get("all_words_by_prompt", selection)
        if frame.empty:
            st.info("No word maps in this selection.")
            return
        chart(draw("all_words_figure", frame), "all_words")
        csv_button(frame, "shares_every_word_by_prompt")
        return
    per_generation = get("word_share_per_generation", selection, word)
    if per_generation.empty:
        st.info(f"“{escape_markdown(word)}” has no map in this selection.")
        return
    chart(draw("share_by_prompt_figure", per_generation, word), "prompts")
    csv_button(per_generation, f"share_{word}_by_generation")


def prompt_edit(selection: compare.Selection, options: compare.CompareOptions) -> None:
    st.subheader("Two prompts: how attribution moves")
    if len(options.prompts) < 2:
        st.info("One prompt only: sweep two prompts that differ by words, e.g. “a dog” and “a red dog”.")
        return
    ids = list(options.prompts)
    column_a, column_b, column_model = st.columns(3)
    with column_a:
        prompt_a = URL.choice(st.selectbox, "Prompt A", ids, "prompt_a", format_func=options.prompts.get)
    with column_b:
        prompt_b = URL.choice(
            st.selectbox, "Prompt B", ids, "prompt_b", default_index=1, format_func=options.prompts.get
        )
    with column_model:
        models = list(options.models)
        model_id = URL.choice(st.selectbox, "Model", models, "edit_model", format_func=options.models.get)
    edit = get("prompt_edit", selection, prompt_a, prompt_b, model_id)
    if edit.empty:
        st.info("These prompts share no seed on this model (or are the same prompt).")
        return
    texts = (options.prompts[prompt_a], options.prompts[prompt_b])
    st.plotly_chart(draw("prompt_edit_figure", edit, *texts), key="prompt_edit")
    csv_button(edit, "prompt_edit")


def across_seeds(selection: compare.Selection, word: str) -> None:
    per_generation = get("word_share_per_generation", selection, word)
    if per_generation.empty:
        st.info(f"“{escape_markdown(word)}” has no map in this selection.")
        return
    kind = URL.choice(st.radio, "Distribution", ["box", "violin"], "distribution", horizontal=True)
    chart(draw("seed_distribution_figure", per_generation, word, kind), "seeds")
    csv_button(per_generation, f"share_{word}_by_seed")

    st.subheader("Stability")
    st.caption(
        f"Mean pairwise correlation and IoU (tau = 0.4) of the word's maps, over at most {compare.MAX_MAPS} seeds."
    )
    stability = get("seed_stability", selection, word)
    chart(draw("stability_figure", stability, word), "stability")
    csv_button(stability, f"stability_{word}")

    st.subheader(f"Maps of “{escape_markdown(word)}”, seed by seed")
    groups = per_generation.drop_duplicates(["prompt_id", "model_id"])
    labels = {
        (row.prompt_id, row.model_id): f"{charts.short(row.prompt, 60)} · {row.model}" for row in groups.itertuples()
    }
    prompt_id, model_id = URL.choice(
        st.selectbox, "Prompt and model", list(labels), "grid", encode=lambda pair: f"{pair[0]}-{pair[1]}",
        format_func=labels.get,
    )  # fmt: skip
    grid = get("seed_maps", selection, word, prompt_id, model_id)
    alpha, cmap = maps_ui.map_controls()
    maps, titles, images = [m.heat_map for m in grid], [f"seed {m.seed}" for m in grid], [m.image for m in grid]
    st.plotly_chart(draw("map_grid_figure", maps, titles, images, alpha, cmap), key="seed_grid")


def across_models(selection: compare.Selection, options: compare.CompareOptions) -> None:
    if len(options.models) < 2:
        st.info("Only one model has generations: run a sweep with two, e.g. `--models sd1-tiny,sd2-tiny`.")
        return
    ids = list(options.models)
    column_a, column_b = st.columns(2)
    with column_a:
        model_a = URL.choice(st.selectbox, "Model A", ids, "model_a", format_func=options.models.get)
    with column_b:
        model_b = URL.choice(st.selectbox, "Model B", ids, "model_b", default_index=1, format_func=options.models.get)
    if model_a == model_b:
        st.info("Model A and model B are the same: pick two different models.")
        return
    label_a, label_b = options.models[model_a], options.models[model_b]
    points = URL.choice(st.radio, "Points", ["Mean over seeds", "One per seed"], "points", horizontal=True)
    if points == "Mean over seeds":
        scatter = get("model_share_means", selection, model_a, model_b)
        figure = "model_means_figure"
    else:
        scatter = get("model_share_scatter", selection, model_a, model_b)
        figure = "model_scatter_figure"
    if scatter.empty:
        st.info(f"{escape_markdown(label_a)} and {escape_markdown(label_b)} share no (prompt, seed) in this selection.")
        return
    chart(draw(figure, scatter, label_a, label_b), "model_scatter")
    csv_button(scatter, "shares_model_a_vs_b")

    st.subheader("One prompt: agreement of the maps, side by side")
    pairs = get("model_pairs", selection, model_a, model_b)
    prompts = dict(zip(pairs["prompt_id"], pairs["prompt"], strict=False))
    prompt_id = URL.choice(st.selectbox, "Prompt", list(prompts), "prompt", format_func=prompts.get)
    one_prompt = selection.narrowed(prompt_ids=(prompt_id,))
    st.caption(f"Maps aligned to the coarser resolution; mean over at most {compare.MAX_MAPS} seeds both models ran.")
    agreement = get("model_agreement", one_prompt, model_a, model_b)
    chart(draw("agreement_figure", agreement, label_a, label_b), "agreement")
    csv_button(agreement, "agreement_model_a_vs_b")

    seeds = pairs[pairs["prompt_id"] == prompt_id]
    pairs_by_seed = {row.seed: (row.generation_id_a, row.generation_id_b) for row in seeds.itertuples()}
    seed = URL.choice(st.selectbox, "Seed", list(pairs_by_seed), "seed", format_func=lambda seed: f"seed {seed}")
    alpha, cmap = maps_ui.map_controls()
    for side, (column, generation_id, label) in enumerate(
        zip(st.columns(2), pairs_by_seed[seed], (label_a, label_b), strict=True)
    ):
        shown = get("generation_maps", generation_id)
        with column:
            st.markdown(f"**{escape_markdown(label)}** · generation {generation_id}")
            if shown.image_png:
                st.image(shown.image_png, width=160)
            maps, titles = [w.heat_map for w in shown.words], [w.word for w in shown.words]
            figure = draw("map_grid_figure", maps, titles, [shown.image] * len(maps), alpha, cmap, 4)
            st.plotly_chart(figure, key=f"side_{side}_{generation_id}")


def pick_generation(choices: dict[int, str], none_message: str) -> int | None:
    """One generation of `choices` (id -> label; kept in the URL), or None after saying there is none."""
    if not choices:
        st.info(none_message)
        return None
    return URL.choice(st.selectbox, "Generation", list(choices), "generation", format_func=choices.get)


def word_overlap(selection: compare.Selection) -> None:
    scope = URL.choice(
        st.radio, "Overlap of", ["One generation", "The selection, averaged"], "overlap", horizontal=True
    )
    if scope == "One generation":
        generation_id = pick_generation(get("generation_choices", selection), "No generation in this selection.")
        if generation_id is None:
            return
        matrix = get("overlap_of_generation", generation_id)
        title = f"Word x word IoU of the tau-masks, generation {generation_id}"
    else:
        st.caption(f"Averaged over the newest {compare.MAX_MAPS} generations; words matched by their text.")
        matrix = get("mean_overlap", selection)
        title = "Word x word IoU of the tau-masks, averaged"
    if matrix.empty:
        st.info("No word maps in this selection.")
        return
    st.plotly_chart(draw("overlap_figure", matrix, title), key="overlap")
    csv_button(matrix, "word_overlap")


def per_step(selection: compare.Selection) -> None:
    generation_id = pick_generation(
        get("generations_with_steps", selection),
        "No generation in this selection has per-step maps: sweep with `--save-steps` to record them.",
    )
    if generation_id is None:
        return
    steps = get("step_shares", generation_id)
    chart(draw("step_figure", steps, generation_id), "steps")
    csv_button(steps, f"step_shares_{generation_id}")


st.title("Compare")
store = ui.get_store()
with ui.errors_as_messages():
    st.session_state["compare_version"] = compare.store_version(store)
    with st.sidebar:
        st.header("Filters")
        tags = [ALL, *get("compare_options", None).tags]
        tag = URL.choice(st.selectbox, "Sweep or tag", tags, "tag", help="`daam-store sweep --name N` tags sweep:N.")
    tag = None if tag == ALL else tag
    options = get("compare_options", tag)
    if not options.prompts:
        st.info("Nothing to compare yet: generate some images, or run `daam-store sweep --prompts FILE --seeds 0-7`.")
        st.stop()
    selection, word = sidebar(tag, options)
    view = URL.choice(st.segmented_control, "View", VIEWS, "view") or VIEWS[0]
    if view in ("Across prompts", "Across seeds") and word is None:
        st.info("No word in this selection has a heat map.")
    elif view == "Across prompts":
        across_prompts(selection, word)
        prompt_edit(selection, options)
    elif view == "Across seeds":
        across_seeds(selection, word)
    elif view == "Across models":
        across_models(selection, options)
    elif view == "Word overlap":
        word_overlap(selection)
    else:
        per_step(selection)
URL.publish()  # after an error too: the choices that led to it stay in the URL
