"""The project's routes with billing's mounted as sverm/urls.py mounts them (`api/`, `v1/`),
ahead of the API catch-all; works whether or not sverm/urls.py includes them already."""

from django.urls import include, path

from sverm import urls as project

urlpatterns = [
    path("api/", include("billing.urls")),
    path("v1/", include("billing.urls_v1")),
    *project.urlpatterns,
]

handler400 = project.handler400
handler403 = project.handler403
handler404 = project.handler404
handler500 = project.handler500
