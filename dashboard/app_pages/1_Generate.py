"""Generate: run traced generations (prompts x seeds on one model, or a sweep over models) and store them."""

import maps_ui
import streamlit as st
import ui

from daam_store.access import Permission
from daam_store.generate import GenerationRequest
from daam_store.sweep import SweepProgress, SweepSettings, parse_seed_spec, run_sweep, sweep_tag
from daam_store.tags import parse_tags
from daam_store.views.common import enlarge, escape_markdown, unmapped_words_note, word_overlays
from daam_store.views.generate import BatchRequest, SweepGrid, model_choices, parse_prompts, run_generations
from daam_store.views.models import chosen_model
from daam_store.wording import plural

actor = ui.require(Permission.GENERATE)

st.title("Generate")
st.write(
    "Run Stable Diffusion with its cross-attention traced: every image is saved to the store "
    "with one heat map per word of its prompt."
)

store = ui.get_store()
choices = ui.or_stop(model_choices, store)

with st.form("generate"):
    model_label = st.selectbox("Model", list(choices))
    other_model = st.text_input(
        "…or another model: a hub id or a local diffusers folder (used when filled in)",
        placeholder="e.g. stabilityai/stable-diffusion-2-base or /data/models/my-sd",
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


def map_controls() -> tuple[float, str]:
    alpha, cmap = maps_ui.map_controls()
    maps_ui.colour_scale(cmap)
    return alpha, cmap


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


if submitted:
    results: list = []
    st.session_state["generate_results"] = results  # filled as they come, so a failure keeps the saved ones
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
        store.require_writable()  # a read-only store is for browsing: say so before loading a model
        pipe = ui.get_pipeline(chosen_model(actor, choices[model_label], other_model))
        bar = ui.TrackedProgress("generate_progress", f"Step 0 of {batch.total_steps}")

        def show_progress(done: int, total: int) -> None:
            bar.update(done / total, f"step {done} of {total}, {len(results)} saved")

        alpha, cmap = map_controls()
        for result in run_generations(pipe, batch, store, on_progress=show_progress):
            results.append(result.for_display())
            show_result(result, alpha, cmap)  # each one as soon as it is saved, not at the end of the batch
        bar.finish(f"Done: {plural(len(results), 'generation')} saved to the store")
else:
    ui.show_if_stopped("generate_progress", "The generations shown below were saved; generate the rest again.")
    if st.session_state.get("generate_results"):  # a rerun (e.g. the opacity slider): show the last batch again
        alpha, cmap = map_controls()
        for result in st.session_state["generate_results"]:
            show_result(result, alpha, cmap)

st.divider()
st.subheader("Sweep: prompts x seeds x models")
st.write(
    "The same grid as `daam-store sweep`: what is already stored with these settings is skipped, a stopped "
    "sweep resumes where it ended, and every row is tagged `sweep:<name>` for the Compare page."
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
        sweep_bar = ui.TrackedProgress("sweep_progress", "Starting the sweep")

        def show_sweep_progress(progress: SweepProgress) -> None:
            sweep_bar.update(
                progress.fraction,
                f"{progress.done} of {progress.total} done ({progress.generated} new, {progress.skipped} stored)",
            )

        grid = SweepGrid.parse(sweep_prompts_text, sweep_seeds_text, [choices[label] for label in sweep_models])
        report = run_sweep(
            store,
            grid.prompts,
            grid.seeds,
            grid.models,
            SweepSettings(
                steps=int(sweep_steps),
                guidance_scale=float(sweep_guidance),
                negative_prompt=sweep_negative_prompt.strip() or None,
                save_steps=sweep_save_steps,
                author=actor.author(sweep_author.strip()),
            ),
            name=sweep_name.strip() or None,
            on_progress=show_sweep_progress,
        )
        sweep_bar.finish(f"Sweep done: {report.generated} generated, {report.skipped} already stored")
        # Opens Compare with this sweep chosen (its filters live in the URL).
        compare_query = {"tag": sweep_tag(report.name)} if report.name else {}
        st.page_link("app_pages/4_Compare.py", label="Compare the sweep", query_params=compare_query)
else:
    ui.show_if_stopped("sweep_progress", "Run the same sweep again to resume: what is stored is skipped.")
