"""WebSocket routes of batches: sverm/asgi.py puts them before swarms' (whose last route answers
every other path with 4404), so swarms never imports this app."""

from django.urls import re_path

from batches.consumers import BatchStreamConsumer
from swarms.routing import ID

websocket_urlpatterns = [
    re_path(rf"^api/batches/(?P<batch_id>{ID})/stream$", BatchStreamConsumer.as_asgi()),
]
