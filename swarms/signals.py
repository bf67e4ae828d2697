"""What other apps may hear from runs without swarms importing them.

`run_ended` is sent once a run's end has committed (completed, failed or cancelled: by its
worker, a cancel, the reaper), with `run_id` and `status`, from whichever process ended it.
Receivers run after the commit and must not raise (a receiver's error is logged, never the
run's): batches start their next items, schedules their queued firings."""

from django.dispatch import Signal

run_ended = Signal()
