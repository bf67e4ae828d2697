"""sverm: budgeted swarms of LLM agents, as a service."""

from sverm.celery import app as celery_app

__all__ = ("celery_app",)
