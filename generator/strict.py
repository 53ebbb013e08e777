"""The base of every config section: unknown keys are errors (`extra="forbid"`), so a typo is caught.

A leaf module: every wing's config section derives from it without importing the run config."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")
