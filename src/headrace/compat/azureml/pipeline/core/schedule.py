"""`azureml.pipeline.core.schedule`: schedules of published pipelines and endpoints."""

from __future__ import annotations

from headrace.sdk.schedule import Schedule, ScheduleRecurrence, TimeZone

__all__ = ["Schedule", "ScheduleRecurrence", "TimeZone"]
