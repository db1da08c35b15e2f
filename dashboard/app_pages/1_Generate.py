"""Generate: queue traced generations (prompts x seeds on one model, or a sweep over models) and follow them.

The generations run as jobs in a worker outside this page (the dashboard's local worker, or Ray workers): closing
the tab stops nothing, two people's batches queue instead of blocking each other's page, and what the page shows
comes from the store, so a reload (the job ids are in the URL) finds the batch again.
"""

import jobs_ui
import maps_ui
import streamlit as st
import ui

from daam_store.access import Permission
from daam_store.generate import GenerationRequest
from daam_store.sweep import SweepSettings, parse_seed_spec, sweep_tag
from daam_store.tags import parse_tags
from daam_store.views.common import enlarge, escape_markdown, unmapped_words_note, word_overlays
from daam_store.views.generate import (
    BatchRequest,
    SweepGrid,
    landed_results,
    model_choices,
    parse_prompts,
    submit_batch,
    submit_sweep,
)
from daam_store.views.models import chosen_model

actor = ui.require(Permission.GENERATE)

st.title("Generate")
st.write(
    "Run Stable Diffusion with its cross-attention traced: every image is saved to the store "
    "with one heat map per word of its prompt. Generations run as jobs, one after another, "
    "whether or not this page stays open; the Jobs page lists everyone's."
)

store = ui.get_store()
choices = ui.or_stop(model_choices, store)

with st.form("generate"):
    model_label = st.selectbox("Model", list(choices))
    other_model = (
        st.text_input(
            "…or another model: a hub id or a local diffusers folder (used when filled in)",
            placeholder="e.g. stabilityai/stable-diffusion-2-base or /data/models/my-sd",
        )
        if actor.may(Permission.REGISTER_MODELS)
        else ""
    )
    prompts_text = st.text_area("Prompts, one per line", value="a red circle and a blue square")
    seeds_column, steps_column, guidance_column = st.columns(3)
    seeds_text = seeds_column.text_input("Seeds", value="0", help="Numbers and ranges, e.g. `0, 3, 10-12`.")
    # no bounds on the inputs: a value out of range gets a line saying why, not a silent red field
    steps = steps_column.number_input("Steps", value=GenerationRequest.steps, step=1)
    guidance = guidance_column.number_input("Guidance", value=GenerationRequest.guidance_scale, step=0.5)
    negative_prompt = st.text_input("Negative prompt")
    with st.expander("Record with the generations"):
        # In team mode the author is whoever is signed in, never typed.
        author = "" if actor.team_mode else st.text_input("Author")
        tags_text = st.text_input("Tags, comma-separated")
        save_steps = st.checkbox("Keep per-step maps (bigger rows; enables the per-step view in Explore)")
        mid_block = st.checkbox(
            "Average the UNet's mid block into the maps too",
            help="The default follows the original DAAM: the down and up blocks' cross-attention only. "
            "Either way the per-layer view shows every layer.",
        )
    submitted = st.form_submit_button("Generate", type="primary")

if submitted:
    with ui.errors_as_messages():
        batch = BatchRequest(
            prompts=tuple(parse_prompts(prompts_text)),
            seeds=tuple(parse_seed_spec(seeds_text)),
            steps=int(steps),
            guidance_scale=float(guidance),
            negative_prompt=negative_prompt.strip(),
            author=actor.author(author.strip()),
            tags=parse_tags(tags_text),
            save_steps=save_steps,
            mid_block=mid_block,
        )
        model = chosen_model(actor, choices[model_label], other_model)  # roots and registration: checked by submit
        jobs_ui.remember_batch(submit_batch(store, actor, batch, model))


def show_result(result, alpha: float, cmap: str) -> None:
    experiment = result.experiment
    with st.container(border=True, key=f"generation-{result.generation_id}"):
        st.text(f"Generation #{result.generation_id} · seed {experiment.seed}")
        st.text(experiment.prompt)
        image_column, maps_column = st.columns([1, 4])
        with image_column:
            st.image(enlarge(experiment.image), width=200)
            st.page_link(
                "app_pages/2_Explore.py", label="Open in Explore", query_params={"generation": result.generation_id}
            )
        with maps_column:
            note = unmapped_words_note(experiment)
            if note:
                st.info(escape_markdown(note), icon="ℹ️")
            ui.show_overlays(word_overlays(experiment, alpha, cmap), per_row=5)


def show_landed(progress) -> None:
    """Each finished generation of the batch, loaded from the store once per browser session."""
    shown = st.session_state.setdefault("generate_landed", {})
    for result in ui.or_stop(landed_results, store, progress, set(shown)):
        shown[result.generation_id] = result
    results = [shown[generation_id] for generation_id in progress.generation_ids if generation_id in shown]
    if results:
        alpha, cmap = maps_ui.map_controls()
        maps_ui.colour_scale(cmap)
        for result in results:
            show_result(result, alpha, cmap)


batch_ids = jobs_ui.batch_ids()
if batch_ids:
    progress = jobs_ui.follow(store, "Batch", lambda: jobs_ui.progress_of(store, batch_ids))
    show_landed(progress)

st.divider()
st.subheader("Sweep: prompts x seeds x models")
st.write(
    "The same grid as `daam-store sweep`: what is already stored with these settings is done at once, "
    "submitting the same sweep again adds no job (failed ones are queued again), and every row is tagged "
    "`sweep:<name>` for the Compare page."
)
with st.form("sweep"):
    sweep_models = st.multiselect("Sweep models", list(choices), default=list(choices)[:2])
    sweep_prompts_text = st.text_area("Sweep prompts, one per line", value="a red circle and a blue square")
    sweep_seeds_text = st.text_input("Sweep seeds", value="0-3")
    steps_column, guidance_column = st.columns(2)
    sweep_steps = steps_column.number_input("Sweep steps", value=GenerationRequest.steps, step=1)
    sweep_guidance = guidance_column.number_input("Sweep guidance", value=GenerationRequest.guidance_scale, step=0.5)
    sweep_negative_prompt = st.text_input("Sweep negative prompt")
    sweep_name = st.text_input("Sweep name", value="dashboard")
    with st.expander("Record with the sweep"):
        sweep_author = "" if actor.team_mode else st.text_input("Sweep author")
        sweep_save_steps = st.checkbox("Keep per-step maps (enables Compare's per-step view)", key="sweep_save_steps")
    sweep_submitted = st.form_submit_button("Run sweep")

if sweep_submitted:
    with ui.errors_as_messages():
        grid = SweepGrid.parse(sweep_prompts_text, sweep_seeds_text, [choices[label] for label in sweep_models])
        settings = SweepSettings(
            steps=int(sweep_steps),
            guidance_scale=float(sweep_guidance),
            negative_prompt=sweep_negative_prompt.strip() or None,
            save_steps=sweep_save_steps,
            author=actor.author(sweep_author.strip()),
        )
        name = sweep_name.strip()
        submit_sweep(store, actor, grid, settings, name)
        jobs_ui.remember_sweep(name)

followed_sweep = jobs_ui.followed_sweep()
if followed_sweep:
    sweep_progress = jobs_ui.follow(store, f"Sweep {followed_sweep}", lambda: jobs_ui.sweep_of(store, followed_sweep))
    if sweep_progress.all_finished:  # Compare opens with this sweep chosen (its filters live in the URL)
        st.page_link(
            "app_pages/4_Compare.py", label="Compare the sweep", query_params={"tag": sweep_tag(followed_sweep)}
        )
