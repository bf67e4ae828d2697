"""sverm: budgeted swarms of LLM agents, as a service.

Celery's app is not imported here (Celery's Django recipe does so that `shared_task` finds it):
sverm/beat.py's app must load without it, and every Django process imports it anyway, with
swarms/jobs.py, which sends every task; `celery -A sverm` finds it in sverm/celery.py.
"""
