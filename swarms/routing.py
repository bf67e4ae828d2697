"""WebSocket routes, served by the same Daphne process as HTTP."""

from django.urls import path, re_path

from swarms import consumers

websocket_urlpatterns = [
    path("v1/swarms/<str:run_id>/stream", consumers.V1RunStreamConsumer.as_asgi()),
    path("api/runs/<str:run_id>/stream", consumers.RunStreamConsumer.as_asgi()),
    path(
        "api/workspaces/<str:workspace_id>/stream",
        consumers.WorkspaceStreamConsumer.as_asgi(),
    ),
    re_path(r"^.*$", consumers.NoRouteConsumer.as_asgi()),
]
