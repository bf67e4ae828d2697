"""Django's SQLite backend, with this process's write transactions queued on a lock (base.py)."""
