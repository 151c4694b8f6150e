"""Request bodies of the HTTP API (they also document it in OpenAPI), and the types of their values.
The worker API's bodies are derived from its messages (``worker_bodies.py``).

Every string, number and time a client sends is bounded here by ``core/limits.py``, so that the
limits are published in the OpenAPI document (maxLength, pattern, minimum, maximum) and refused with
a 422 on both backends before anything reaches the database.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    PlainValidator,
    StringConstraints,
    WithJsonSchema,
    create_model,
)
from pydantic_core import PydanticCustomError

from hightide.core import limits
from hightide.core.options import TRIGGER_OPTIONS, Option, OptionKind


def _no_nul(value: str) -> str:
    if "\x00" in value:
        raise PydanticCustomError("nul_character", "must not contain a NUL character (\\u0000)")
    return value


NUL = AfterValidator(_no_nul)
NUL_SCHEMA = Field(json_schema_extra={"pattern": limits.NO_NUL})


def _length(max_length: int, min_length: int = 1) -> StringConstraints:
    return StringConstraints(min_length=min_length, max_length=max_length)


# Strings: 1 to n characters, no NUL; n is the column that stores them.
Id = Annotated[str, _length(limits.MAX_ID_LENGTH), NUL, NUL_SCHEMA]
TaskId = Annotated[str, _length(limits.MAX_TASK_ID_LENGTH), NUL, NUL_SCHEMA]
Name = Annotated[str, _length(limits.MAX_NAME_LENGTH), NUL, NUL_SCHEMA]
Tag = Annotated[str, _length(limits.MAX_TAG_LENGTH), NUL, NUL_SCHEMA]
IdempotencyKey = Annotated[str, _length(limits.MAX_IDEMPOTENCY_KEY_LENGTH), NUL, NUL_SCHEMA]
Seq = Annotated[str, _length(limits.MAX_SEQ_LENGTH), NUL, NUL_SCHEMA]
Kind = Annotated[str, _length(limits.MAX_KIND_LENGTH), NUL, NUL_SCHEMA]
Opaque = Annotated[str, _length(limits.MAX_TOKEN_LENGTH, 0), NUL, NUL_SCHEMA]
"""A value that is not stored as such (a cursor, a signature, a filter, a duration's text)."""
Tags = Annotated[list[Tag], Field(max_length=limits.MAX_TAGS)]
PageSize = Annotated[int, Field(ge=1, le=limits.MAX_PAGE, description="items per page")]

# Numbers
Count = Annotated[int, Field(ge=0, le=limits.MAX_INT)]
"""An attempt or execution number, a log id: what an INTEGER column holds on both databases."""
Time = Annotated[
    float,
    Field(ge=limits.MIN_TIME, lt=limits.MAX_TIME, description="seconds since the epoch, from year 1 to before 9000"),
]


def _seconds_or_text(value: Any) -> float | str:
    """A duration as sent: seconds (0 to 10 years) or a text for the engine to parse ('5m', a date)."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        problem = limits.duration_problem(value)
        if problem is not None:
            raise PydanticCustomError("duration", problem)
        return float(value)
    if isinstance(value, str):
        if not 1 <= len(value) <= limits.MAX_DURATION_TEXT_LENGTH:
            raise PydanticCustomError("duration", f"expected 1 to {limits.MAX_DURATION_TEXT_LENGTH} characters")
        return _no_nul(value)
    raise PydanticCustomError("duration", "expected a number of seconds or a string such as '30s', '5m', '1h30m'")


def _duration_schema(description: str) -> WithJsonSchema:
    number = {"type": "number", "minimum": 0, "maximum": limits.MAX_DURATION}
    text = {"type": "string", "minLength": 1, "maxLength": limits.MAX_DURATION_TEXT_LENGTH, "pattern": limits.NO_NUL}
    return WithJsonSchema({"anyOf": [number, text], "description": description})


Duration = Annotated[
    float | str,
    PlainValidator(_seconds_or_text),
    _duration_schema("seconds (at most 10 years) or a duration such as '30s', '5m', '1h30m', '2d'"),
]
Delay = Annotated[
    float | str,
    PlainValidator(_seconds_or_text),
    _duration_schema("a duration (seconds or '5m', at most 10 years) or an ISO 8601 date-time before year 9000"),
]


class Body(BaseModel):
    """Every request body: NaN and Infinity are not numbers the API takes (JSON has none)."""

    model_config = ConfigDict(allow_inf_nan=False)


class StrictBody(Body):
    model_config = ConfigDict(extra="forbid")


def _text(max_length: int) -> Any:
    return Annotated[str, _length(max_length), NUL, NUL_SCHEMA]


class DebounceBody(StrictBody):
    """``options.debounce``: triggers with the same key while its run is delayed push it later."""

    key: Name
    delay: Duration = Field(..., description="e.g. '5s': the run starts this long after the last trigger")
    mode: Literal["leading", "trailing"] = Field(
        default="leading", description="leading keeps the first trigger's payload, trailing the last one's"
    )
    max_delay: Duration | None = Field(default=None, description="never later than this after the first trigger")


def _api_type(how: Option) -> Any:
    """The type the API takes for an option of this kind, with its limits (see core/options.py)."""
    if how.kind is OptionKind.TEXT:
        assert how.max_length is not None
        return _text(how.max_length)
    if how.kind is OptionKind.TAGS:
        assert how.max_length is not None
        return Annotated[list[_text(how.max_length)], Field(max_length=how.max_items)]  # type: ignore[misc]
    if how.kind is OptionKind.COUNT:
        return Annotated[int, Field(ge=how.minimum, le=how.maximum)]
    if how.kind is OptionKind.SECONDS:
        return Annotated[float, Field(ge=how.minimum, le=how.maximum)]
    kinds = {
        OptionKind.DURATION: Duration,
        OptionKind.DELAY: Delay,
        OptionKind.OBJECT: dict[str, Any],
        OptionKind.DEBOUNCE: DebounceBody,
    }
    return kinds[how.kind]


class OptionsBody(StrictBody):
    """What ``TriggerOptions`` is built on: the options that were sent, as the engine takes them."""

    def as_dict(self) -> dict[str, Any]:
        return self.model_dump(exclude_none=True)


def _trigger_options() -> type[OptionsBody]:
    # Derived from core/options.py: every option, optional, with its help text as its description.
    declared: dict[str, Any] = {
        o.sent_as: (_api_type(o.how) | None, Field(default=None, description=o.how.help)) for o in TRIGGER_OPTIONS
    }
    return create_model("TriggerOptions", __base__=OptionsBody, __module__=__name__, **declared)


if TYPE_CHECKING:  # its fields are built at import: a type checker knows it by its base
    TriggerOptions = OptionsBody
else:
    TriggerOptions = _trigger_options()


class TriggerBody(StrictBody):
    payload: Any = None
    options: TriggerOptions = Field(default_factory=lambda: TriggerOptions())


class BatchItem(TriggerBody):
    task: TaskId | None = Field(default=None, description="the task id; defaults to the task in the URL")


class BatchBody(StrictBody):
    items: list[BatchItem]


class RescheduleBody(StrictBody):
    delay: Delay


class TokenOptions(StrictBody):
    timeout: Duration | None = Field(default=None, description="e.g. '10m'; the token times out after it")
    tags: Tags = Field(default_factory=list)
    idempotency_key: IdempotencyKey | None = None
    idempotency_key_ttl: Duration | None = Field(default=None, description="e.g. '1h'; default 30 days")


class CompleteTokenBody(StrictBody):
    data: Any = Field(default=None, description="the token's output, returned by wait.for_token")


class JournalOp(Body):
    """One durable operation of a run, at position ``seq``."""

    model_config = ConfigDict(extra="forbid")

    seq: Seq = Field(..., description="the position, e.g. '3' or 't1/0'")
    kind: Kind
    name: Annotated[str, _length(limits.MAX_NAME_LENGTH, 0), NUL, NUL_SCHEMA] = ""
    items: list[BatchItem] = Field(default_factory=list, max_length=1000, description="trigger kinds")
    resume_at: Time | None = Field(default=None, description="wait: seconds since the epoch")
    idempotency_key: IdempotencyKey | None = None
    idempotency_key_ttl: Duration | None = None
    token: TokenOptions | None = Field(default=None, description="create_token")
    token_id: Id | None = Field(default=None, description="wait_for_token, complete_token")
    data: Any = Field(default=None, description="complete_token")
    result: Any = Field(default=None, description="step: the JSON value it returned")


class JournalBody(JournalOp):
    """A durable operation recorded by the runner executing ``attempt`` of the run."""

    attempt: Count
    execution: Count | None = Field(default=None, description="the `execution` of the claim; a stale one is refused")


class ResetKeyBody(StrictBody):
    task_id: TaskId
    key: IdempotencyKey


class ConcurrencyLimitBody(StrictBody):
    concurrency_limit: Count = Field(
        ..., description="runs of the queue executing at once, whatever its tasks declare (0 starts none)"
    )


class BulkFilter(StrictBody):
    """The runs a bulk action selects, as ``GET /api/v1/runs`` filters them (all given must match)."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    status: list[Kind] = Field(default_factory=list, max_length=20)
    task: list[TaskId] = Field(default_factory=list, max_length=100)
    tag: Tag | None = None
    version: Id | None = None
    created_from: datetime | None = Field(default=None, alias="from", description="created at or after")
    created_to: datetime | None = Field(default=None, alias="to", description="created before")


class BulkBody(StrictBody):
    action: Literal["cancel", "replay"]
    ids: list[Id] | None = Field(default=None, max_length=10_000, description="the runs, by id")
    filter: BulkFilter | None = Field(default=None, description="or the runs this selects now")


CronPattern = Annotated[str, _length(256), NUL, NUL_SCHEMA]
TimezoneName = Annotated[str, _length(64), NUL, NUL_SCHEMA]


class CreateScheduleBody(StrictBody):
    task: TaskId = Field(..., description="the task each tick runs")
    cron: CronPattern = Field(..., description="5 fields: minute hour day-of-month month day-of-week; L allowed")
    timezone: TimezoneName = Field("UTC", description="IANA timezone the pattern is read in (GET /api/v1/timezones)")
    external_id: IdempotencyKey | None = Field(None, description="yours, e.g. a user id; in each run's payload")
    deduplication_key: IdempotencyKey | None = Field(
        None, description="another create with the same key updates that schedule in place"
    )


class UpdateScheduleBody(StrictBody):
    task: TaskId | None = None
    cron: CronPattern | None = None
    timezone: TimezoneName | None = None
    external_id: IdempotencyKey | None = None


WebhookUrl = Annotated[str, _length(2048), NUL, NUL_SCHEMA]
AlertEvents = Annotated[
    list[Kind],
    Field(min_length=1, max_length=10, description="the events sent: run.failed (deployment events come with deploys)"),
]


class CreateAlertBody(StrictBody):
    url: WebhookUrl = Field(..., description="where each event is POSTed (http or https)")
    events: AlertEvents
    description: Name | None = Field(None, description="what the webhook is for, shown in listings")
    enabled: bool = True


class UpdateAlertBody(StrictBody):
    url: WebhookUrl | None = None
    events: AlertEvents | None = None
    description: Annotated[str, _length(limits.MAX_NAME_LENGTH, 0), NUL, NUL_SCHEMA] | None = None
    enabled: bool | None = None
    rotate_secret: bool = Field(False, description="make a new signing secret; the old one stops at once")
