"""WSGI entry point (admin and REST only; WebSockets need the ASGI app)."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "sverm.settings")
application = get_wsgi_application()
