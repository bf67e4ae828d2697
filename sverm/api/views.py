"""Views of the API plumbing itself."""

from drf_spectacular.utils import extend_schema
from rest_framework.permissions import AllowAny
from rest_framework.views import APIView

from sverm.api.errors import NotFound


@extend_schema(exclude=True)
class RouteNotFoundView(APIView):
    """Catch-all under `/api` and `/v1`: an unknown route answers in the API's error format,
    with DEBUG on as well (where Django would otherwise render its HTML 404 page)."""

    authentication_classes: list = []
    permission_classes = [AllowAny]

    def _not_found(self, request, *args, **kwargs):
        raise NotFound(f"No route matches {request.method} {request.path}.")

    get = post = put = patch = delete = head = options = _not_found

    def finalize_response(self, request, response, *args, **kwargs):
        response = super().finalize_response(request, response, *args, **kwargs)
        del response["Allow"]  # no method is allowed on a route that does not exist
        return response
