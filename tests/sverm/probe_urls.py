"""Test-only routes under /v1 and /api that raise each error, on top of the real routes."""

from django.db import OperationalError
from django.urls import path
from psycopg_pool import PoolTimeout
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from sverm.api.errors import BudgetExceeded, Forbidden
from sverm.api.serializers import InputSerializer
from sverm.urls import urlpatterns as real_urlpatterns


class ProbeInput(InputSerializer):
    task = serializers.CharField()
    max_budget_usd = serializers.DecimalField(max_digits=10, decimal_places=2, required=False)


class ProbeView(APIView):
    def get(self, request):
        return Response({"ok": True})

    def post(self, request):
        data = ProbeInput(data=request.data)
        data.is_valid(raise_exception=True)
        return Response({"task": data.validated_data["task"]}, status=201)


class ForbiddenView(APIView):
    def get(self, request):
        raise Forbidden("Operators only.")


class BudgetView(APIView):
    def get(self, request):
        raise BudgetExceeded(
            "Swarm cost would exceed maximum budget of $2.50",
            details={"budget": 2.5, "estimated_cost": 3.1},
        )


class BoomView(APIView):
    def get(self, request):
        raise RuntimeError("kaboom")


class PoolTimeoutView(APIView):
    def get(self, request):
        # What Django raises when its psycopg pool gave no connection within DB_POOL_TIMEOUT.
        try:
            raise PoolTimeout("couldn't get a connection after 30.00 sec")
        except PoolTimeout as exc:
            raise OperationalError(*exc.args) from exc


urlpatterns = (
    [path(f"{prefix}/probe", ProbeView.as_view()) for prefix in ("v1", "api")]
    + [path(f"{prefix}/probe/forbidden", ForbiddenView.as_view()) for prefix in ("v1", "api")]
    + [path(f"{prefix}/probe/budget", BudgetView.as_view()) for prefix in ("v1", "api")]
    + [path(f"{prefix}/probe/boom", BoomView.as_view()) for prefix in ("v1", "api")]
    + [path(f"{prefix}/probe/pool", PoolTimeoutView.as_view()) for prefix in ("v1", "api")]
    + real_urlpatterns
)
