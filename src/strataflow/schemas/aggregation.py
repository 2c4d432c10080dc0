"""The aggregation request documents and objects share (`strataflow.aggregation_language` runs it)."""

from __future__ import annotations

from typing import Any

from pydantic import Field, field_validator, model_validator

from strataflow.schemas.common import RequestModel, SortDirection


class GroupByField(RequestModel):
    field: str = Field(min_length=1)
    alias: str | None = None
    date_trunc: str | None = None
    date_part: str | None = None


class AggregationOperation(RequestModel):
    function: str
    field: str | None = None
    alias: str = ""
    distinct_field: str | None = None

    @field_validator("function", mode="before")
    @classmethod
    def _lower(cls, value: Any) -> Any:
        return value.lower() if isinstance(value, str) else value

    @model_validator(mode="after")
    def _default_alias(self) -> AggregationOperation:
        if not self.alias:  # the SDK always names one; older clients did not
            field = self.field or self.distinct_field
            self.alias = f"{self.function}_{field}" if field else self.function
        return self


class HavingCondition(RequestModel):
    field: str = Field(min_length=1)
    operator: str
    value: Any


class RangeBucket(RequestModel):
    field: str = Field(min_length=1)
    boundaries: list[float] = Field(min_length=1, max_length=100)
    default_bucket: str | None = None


class AggregationRequest(RequestModel):
    group_by: list[GroupByField] = Field(default_factory=list, max_length=8)
    aggregations: list[AggregationOperation] = Field(min_length=1, max_length=16)
    filters: dict[str, Any] | None = None
    having: list[HavingCondition] | None = Field(default=None, max_length=16)
    unwind: str | None = Field(default=None, min_length=1)
    range_buckets: list[RangeBucket] | None = Field(default=None, max_length=8)
    sort_by: str | None = None
    sort_direction: SortDirection = "desc"
    limit: int | None = Field(default=None, ge=1, le=10000)
