"""Plain pg8000 connections for the harness's own setup and baselines, from the stack's DATABASE_URL."""

from __future__ import annotations

from infra.local.postgres import connect

__all__ = ["connect"]
