"""Generate: run traced generations (prompts x seeds on one model, or a sweep over models) and store them."""

import streamlit as st
import ui

from daam_store.dashboard_support import (
    BatchRequest,
    SweepGrid,
    enlarge,
    model_choices,
    parse_prompts,
    parse_tags,
    run_generations,
    word_overlays,
)
from daam_store.generate import GenerationRequest
from daam_store.sweep import SweepProgress, SweepSettings, parse_seed_spec, run_sweep

ui.setup_page("Generate")
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
    steps = steps_column.number_input("Steps", min_value=1, max_value=1000, value=GenerationRequest.steps)
    guidance = guidance_column.number_input(
        "Guidance", min_value=0.0, max_value=50.0, value=GenerationRequest.guidance_scale, step=0.5
    )
    negative_prompt = st.text_input("Negative prompt")
    with st.expander("Record with the generations"):
        author = st.text_input("Author")
        tags_text = st.text_input("Tags, comma-separated")
        save_steps = st.checkbox("Keep per-step maps (bigger rows; enables the per-step view in Explore)")
        mid_block = st.checkbox(
            "Average the UNet's mid block into the maps too",
            help="The default follows the original DAAM: the down and up blocks' cross-attention only. "
            "Either way the per-layer view shows every layer.",
        )
    submitted = st.form_submit_button("Generate", type="primary")


def opacity() -> float:
    return st.slider("Heat-map opacity", min_value=0.0, max_value=1.0, value=0.5, step=0.05, key="opacity")


def show_result(result, alpha: float) -> None:
    experiment = result.experiment
    with st.container(border=True, key=f"generation-{result.generation_id}"):
        st.text(f"Generation #{result.generation_id} · seed {experiment.seed}")
        st.text(experiment.prompt)
        image_column, maps_column = st.columns([1, 4])
        with image_column:
            st.image(enlarge(experiment.image), width=200)
            st.page_link(
                "pages/2_Explore.py", label="Open in Explore", query_params={"generation": result.generation_id}
            )
        with maps_column:
            ui.show_overlays(word_overlays(experiment, alpha), per_row=5)


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
            author=author.strip() or None,
            tags=parse_tags(tags_text),
            save_steps=save_steps,
            mid_block=mid_block,
        )
        pipe = ui.get_pipeline(other_model.strip() or choices[model_label])
        bar = st.progress(0.0, text=f"Step 0 of {batch.total_steps}")

        def show_progress(done: int, total: int) -> None:
            bar.progress(done / total, text=f"Step {done} of {total}")

        alpha = opacity()
        for result in run_generations(pipe, batch, store, on_progress=show_progress):
            results.append(result.for_display())
            show_result(result, alpha)  # each one as soon as it is saved, not at the end of the batch
        bar.progress(1.0, text=f"Done: {len(results)} generation(s) saved to the store")
elif st.session_state.get("generate_results"):  # a rerun (e.g. the opacity slider): show the last batch again
    alpha = opacity()
    for result in st.session_state["generate_results"]:
        show_result(result, alpha)

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
    sweep_steps = st.number_input("Sweep steps", min_value=1, max_value=1000, value=GenerationRequest.steps)
    sweep_name = st.text_input("Sweep name", value="dashboard")
    sweep_submitted = st.form_submit_button("Run sweep")

if sweep_submitted:
    with ui.errors_as_messages():
        sweep_bar = st.progress(0.0, text="Starting the sweep")

        def show_sweep_progress(progress: SweepProgress) -> None:
            sweep_bar.progress(
                progress.fraction,
                text=f"{progress.done} of {progress.total} done ({progress.generated} new, {progress.skipped} stored)",
            )

        grid = SweepGrid.parse(sweep_prompts_text, sweep_seeds_text, [choices[label] for label in sweep_models])
        report = run_sweep(
            store,
            grid.prompts,
            grid.seeds,
            grid.models,
            SweepSettings(steps=int(sweep_steps)),
            name=sweep_name.strip() or None,
            on_progress=show_sweep_progress,
        )
        sweep_bar.progress(1.0, text=f"Sweep done: {report.generated} generated, {report.skipped} already stored")
        st.page_link("pages/4_Compare.py", label="Compare the sweep")
