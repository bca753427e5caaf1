"""The code's layout holds: small modules, small classes, one set of figures.

Each concern has one home: these fail when a module or a class grows past
what one reader takes in. The imports' direction is checked by lint-imports
(contracts in pyproject.toml), which make lint runs.
"""

from __future__ import annotations

import ast
from pathlib import Path

from django.db.models import Field

from recordings_app.audio.figures import RecordingFigures
from recordings_app.models import Recording

from .helpers import ROOT

APP = ROOT / "recordings_app"
MAX_MODULE_LINES = 400
MAX_CLASS_LINES = 300


def app_modules() -> list[Path]:
    return sorted(path for path in APP.rglob("*.py") if "migrations" not in path.parts)


def test_no_module_of_the_app_is_over_400_lines() -> None:
    too_long = {
        str(path.relative_to(ROOT)): lines
        for path in app_modules()
        if (lines := len(path.read_text().splitlines())) > MAX_MODULE_LINES
    }
    assert too_long == {}


def test_no_class_of_the_app_is_over_300_lines() -> None:
    too_long = {}
    for path in app_modules():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ClassDef):
                lines = node.end_lineno - node.lineno + 1
                if lines > MAX_CLASS_LINES:
                    too_long[f"{path.relative_to(ROOT)}:{node.name}"] = lines
    assert too_long == {}


def test_every_figure_of_a_recording_has_its_field_on_the_model() -> None:
    model_fields = {
        field.name for field in Recording._meta.get_fields() if isinstance(field, Field)
    }
    assert set(RecordingFigures.names()) <= model_fields
