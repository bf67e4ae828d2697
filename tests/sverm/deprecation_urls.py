"""Test-only routes: a deprecated API view, a viewset with one deprecated action, and the real
routes (which deprecate nothing today)."""

from datetime import date

from django.urls import path
from rest_framework import viewsets
from rest_framework.permissions import IsAuthenticated
from rest_framework.response import Response
from rest_framework.views import APIView

from sverm.api.deprecation import deprecated
from sverm.api.errors import NotFound
from sverm.urls import urlpatterns as real_urlpatterns

SINCE, SUNSET = date(2027, 1, 4), date(2027, 7, 5)


@deprecated(since=SINCE, sunset=SUNSET, successor="/api/things")
class OldThingsView(APIView):
    permission_classes = [IsAuthenticated]

    def get(self, request):
        return Response({"old": True})


class ThingViewSet(viewsets.ViewSet):
    permission_classes = [IsAuthenticated]

    @deprecated(since=SINCE, sunset=SUNSET)
    def list(self, request):
        return Response([])

    def retrieve(self, request, pk=None):
        if pk == "missing":
            raise NotFound("No such thing.")
        return Response({"id": pk})


urlpatterns = [
    path("api/old-things", OldThingsView.as_view()),
    path("api/things", ThingViewSet.as_view({"get": "list"})),
    path("api/things/<str:pk>", ThingViewSet.as_view({"get": "retrieve"})),
    *real_urlpatterns,
]
