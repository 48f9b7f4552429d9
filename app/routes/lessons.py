"""Lessons: GET /api/lessons, /api/lessons/{id}, a session's exercise status, /learn pages."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(tags=["lessons"])
