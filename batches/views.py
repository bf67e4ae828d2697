"""`/api/batches`: create a batch (operator: a JSON body or a JSONL upload), list and read them
with their items (viewer), cancel one (operator) and download its results as JSON lines."""

from asgiref.sync import sync_to_async
from django.core.handlers.asgi import ASGIRequest
from django.http import StreamingHttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiExample, OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.decorators import action
from rest_framework.parsers import JSONParser, MultiPartParser
from rest_framework.renderers import JSONRenderer
from rest_framework.response import Response

from accounts.roles import Role
from accounts.viewsets import WorkspaceScopedViewSet
from batches import selectors, services
from batches.filters import BATCH_ITEM_LIST, BATCH_LIST, BatchFilterSet, BatchItemFilterSet
from batches.inputs import (
    MAX_ITEMS,
    MAX_UPLOAD_BYTES,
    NDJSON,
    JsonlBody,
    JsonlParser,
    NdjsonParser,
    NdjsonRenderer,
    decoded,
    inputs_from_jsonl,
    inputs_from_list,
)
from batches.models import Batch, BatchItem
from batches.serializers import (
    BatchCreateSerializer,
    BatchItemSerializer,
    BatchSerializer,
    BatchSettingsSerializer,
    BatchUploadSerializer,
)
from sverm.api.errors import PROBLEM_CONTENT_TYPE, InvalidRequest, PayloadTooLarge
from sverm.api.idempotency import (
    IDEMPOTENCY_409,
    IDEMPOTENCY_422,
    IDEMPOTENCY_KEY_PARAMETER,
    idempotent,
)
from sverm.api.schema import WORKSPACE_ID_PARAM, ProblemSerializer
from sverm.api.serializers import query_values

# Room for a multipart upload's boundaries and form fields around its 1 MiB file.
MULTIPART_OVERHEAD_BYTES = 64 * 1024
JSONL_TYPES = (NdjsonParser.media_type, JsonlParser.media_type)


def media_type(request) -> str:
    return request.content_type.split(";", 1)[0].strip().lower()


CREATE_DESCRIPTION = f"""Runs one swarm (`swarmId`, at `versionId` or its default version) or
one template (`templateId`) over 1 to {MAX_ITEMS} inputs, each item a run of its own, under one
total budget (`budgetMode`). Send the inputs as:

- `application/json`: the settings and `"inputs": ["task", {{"task": "...", "customId": "..."}}]`;
- `application/x-ndjson` (or `application/jsonl`): one input a line, the settings as query
  parameters (`?swarmId=…&totalBudgetUsd=5`);
- `multipart/form-data`: the JSONL as the `file` part, the settings as form fields.

Bodies and uploads are at most 1 MiB. A bad input is a 400 naming it (`inputs[3]`, and its
`line` in an upload); nothing is created on any error. Items start once the batch is created, at
most `concurrency` at once, through the run API (the plan's concurrent and daily runs apply:
items wait while they refuse). The plan allows `batches_per_hour` creations per workspace
(`free`: 5); past it, 429 `rate_limited` with Retry-After."""


def _results_response(request, batch: Batch) -> StreamingHttpResponse:
    """The results streamed in chunks: a sync iterator under WSGI, an async one under ASGI
    (whose chunks are read on Django's sync thread), so neither server buffers the whole."""
    chunks = selectors.batch_results_chunks(batch_id=batch.pk)
    asgi = isinstance(request._request, ASGIRequest)
    response = StreamingHttpResponse(_async_chunks(chunks) if asgi else chunks, content_type=NDJSON)
    response["Content-Disposition"] = f'attachment; filename="{batch.pk}-results.jsonl"'
    return response


async def _async_chunks(chunks):
    end = object()
    read = sync_to_async(lambda: next(chunks, end))
    while (chunk := await read()) is not end:
        yield chunk


@extend_schema(tags=["batches"])
class BatchViewSet(WorkspaceScopedViewSet):
    queryset = Batch.objects.all()
    serializer_class = BatchSerializer
    filterset_class = BatchFilterSet
    list_spec = BATCH_LIST
    parser_classes = [JSONParser, NdjsonParser, JsonlParser, MultiPartParser]
    error_statuses = ["409", "422"]

    def safely_get_queryset(self, queryset):
        return selectors.batches_with_running_cost(queryset)

    @extend_schema(summary="List batches", parameters=[WORKSPACE_ID_PARAM])
    def list(self, request):
        return self.list_response()

    @extend_schema(
        summary="Create a batch: one swarm or template over many inputs",
        description=CREATE_DESCRIPTION,
        request={
            "application/json": BatchCreateSerializer,
            NDJSON: OpenApiTypes.STR,
            "multipart/form-data": BatchUploadSerializer,
        },
        parameters=[IDEMPOTENCY_KEY_PARAMETER],
        responses={
            201: BatchSerializer,
            (409, PROBLEM_CONTENT_TYPE): OpenApiResponse(
                ProblemSerializer,
                description=f"A deleted swarm or one without a version, or {IDEMPOTENCY_409}",
            ),
            (422, PROBLEM_CONTENT_TYPE): OpenApiResponse(
                ProblemSerializer,
                description="`budget_exceeded`: an item's run could not complete within its "
                "budget (`index`, `minimum_cost`), or " + IDEMPOTENCY_422,
            ),
        },
        examples=[
            OpenApiExample(
                "Split a budget over three tasks",
                request_only=True,
                media_type="application/json",
                value={
                    "templateId": "research-swarm-v1",
                    "inputs": ["Hydrogen in Norway", {"task": "Ammonia ships", "customId": "a"}],
                    "totalBudgetUsd": 3,
                    "concurrency": 2,
                },
            )
        ],
    )
    def create(self, request):
        values, inputs = self._read_batch(request)
        source = selectors.batch_source(
            caller=self.caller,
            workspace_id=values.get("workspaceId"),
            swarm_id=values.get("swarmId"),
            version_id=values.get("versionId"),
            template_id=values.get("templateId"),
        )
        asked = {
            "settings": {key: str(value) for key, value in values.items()},
            "inputs": [[item.task, item.custom_id] for item in inputs],
        }

        def start() -> Response:
            batch = services.batch_create(
                source=source,
                inputs=inputs,
                budget_mode=values["budgetMode"],
                total_budget_usd=values["totalBudgetUsd"],
                per_item_budget_usd=values.get("perItemBudgetUsd"),
                concurrency=values.get("concurrency"),
                created_by=request.user if request.user.is_authenticated else None,
            )
            return Response(self.get_serializer(batch).data, status=status.HTTP_201_CREATED)

        return idempotent(
            request, workspace_id=source.workspace_id, produce=start, fingerprint_data=asked
        )

    def _read_batch(self, request) -> "tuple[dict, list[services.BatchInput]]":
        """The settings and inputs of a creation, whichever way they were sent."""
        length = request.META.get("CONTENT_LENGTH") or "0"
        if (
            request.content_type.startswith("multipart/")
            and length.isdigit()
            and int(length) > MAX_UPLOAD_BYTES + MULTIPART_OVERHEAD_BYTES
        ):
            raise PayloadTooLarge(f"The upload is over {MAX_UPLOAD_BYTES} bytes.")
        data = request.data
        if media_type(request) in JSONL_TYPES:
            settings = BatchSettingsSerializer(data=query_values(request))
            settings.is_valid(raise_exception=True)
            text = data.text if isinstance(data, JsonlBody) else ""  # an empty body: no data
            return settings.validated_data, inputs_from_jsonl(text)
        if request.content_type.startswith("multipart/"):
            form = BatchUploadSerializer(data=data.dict())
            form.is_valid(raise_exception=True)
            upload = form.validated_data.pop("file")
            if upload.size > MAX_UPLOAD_BYTES:
                raise PayloadTooLarge(f"The upload is over {MAX_UPLOAD_BYTES} bytes.")
            return form.validated_data, inputs_from_jsonl(decoded(upload.read()), "file")
        if request.query_params:
            raise InvalidRequest(
                "A JSON body carries every setting: query parameters are for JSONL uploads."
            )
        body = BatchCreateSerializer(data=data)
        body.is_valid(raise_exception=True)
        values = dict(body.validated_data)
        return values, inputs_from_list(values.pop("inputs"))

    @extend_schema(summary="Get a batch: status, counts, progress, cost")
    def retrieve(self, request, pk=None):
        return Response(self.get_serializer(self.get_object()).data)

    @extend_schema(
        summary="Cancel a batch: pending items are skipped, running runs cancelled",
        description=(
            "Answers at once with the batch `cancelled`: nothing more starts, its pending items "
            "are `skipped` and its running runs are cancelled (a queued run at once, a running "
            "one within moments, keeping its partial output and cost). `completedAt` and the "
            "stream's terminal `batch.cancelled` come when its last run has stopped. Cancelling "
            "a cancelled batch changes nothing; a completed or failed one is 409."
        ),
        request=None,
        responses={200: BatchSerializer},
    )
    @action(detail=True, methods=["post"])
    def cancel(self, request, pk=None):
        batch = services.batch_cancel(batch=self.get_object())
        return Response(self.get_serializer(batch).data)

    @extend_schema(
        summary="Download a batch's results as JSON lines (one per item, in input order)",
        description=(
            "`application/x-ndjson`, streamed: one JSON object a line, "
            '`{"index", "customId", "input", "status", "runId", "costUsd", "output", '
            '"error": {"code", "message"} | null}`, for every item in input order, whatever '
            "its status (read it again once the batch ended for the final one). `costUsd` is "
            "USD as a JSON number rounded down to 6 decimal places; `output` is the run's "
            "(empty before it ran, or once retention pruned it)."
        ),
        responses={
            (200, NDJSON): OpenApiResponse(
                OpenApiTypes.STR,
                description="JSON lines, one per item.",
                examples=[
                    OpenApiExample(
                        "Two items",
                        value='{"index": 0, "customId": null, "input": "Hydrogen in Norway", '
                        '"status": "completed", "runId": "run_01k...", "costUsd": 0.0012, '
                        '"output": "## Findings ...", "error": null}\n',
                    )
                ],
            )
        },
    )
    @action(detail=True, methods=["get"], renderer_classes=[NdjsonRenderer, JSONRenderer])
    def results(self, request, pk=None):
        return _results_response(request, self.get_object())


@extend_schema(tags=["batches"])
class BatchItemViewSet(WorkspaceScopedViewSet):
    queryset = BatchItem.objects.select_related("run").defer(
        "run__definition", "run__task", "run__webhook_url"
    )
    serializer_class = BatchItemSerializer
    filterset_class = BatchItemFilterSet
    list_spec = BATCH_ITEM_LIST

    def safely_get_queryset(self, queryset):
        return queryset.filter(batch_id=self.kwargs.get("batch_id"))

    @extend_schema(summary="A batch's items in input order: status, run, cost, output, error")
    def list(self, request, batch_id=None):
        self.get_scoped(Batch.objects.all(), batch_id, Role.VIEWER)  # 404, not an empty list
        return self.list_response()
