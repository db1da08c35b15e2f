"""The localisation benchmark of `daam-store eval`: word maps scored against generated objects."""

from daam_store.evaluation.benchmark import TARGETS, EvalSettings, evaluate, evaluation_items
from daam_store.evaluation.report import format_markdown

__all__ = ["TARGETS", "EvalSettings", "evaluate", "evaluation_items", "format_markdown"]
