"""Lessons: guided walks through the playground whose exercises the server checks.

A lesson is a file here (*.toml, both languages side by side, see loader.py); adding a
lesson means adding a file and its tests. goals.py evaluates an exercise on a session's
state; board.py remembers each session's step and what it has been through.
"""

from __future__ import annotations

from functools import lru_cache

from app.lessons.board import Board, SessionLesson
from app.lessons.goals import QUANTITIES, Check, Goal, LessonState, Progress, evaluate
from app.lessons.loader import LessonError, load_lesson, load_lessons, setup_fields
from app.lessons.model import HIGHLIGHTS, LANGS, Lesson, Step, Text, highlight_selector


@lru_cache(maxsize=1)
def lessons() -> dict[str, Lesson]:
    """Every bundled lesson, loaded and checked once (at start-up: the lessons router asks)."""
    return load_lessons()


__all__ = [
    "HIGHLIGHTS",
    "LANGS",
    "QUANTITIES",
    "Board",
    "Check",
    "Goal",
    "Lesson",
    "LessonError",
    "LessonState",
    "Progress",
    "SessionLesson",
    "Step",
    "Text",
    "evaluate",
    "highlight_selector",
    "lessons",
    "load_lesson",
    "load_lessons",
    "setup_fields",
]
