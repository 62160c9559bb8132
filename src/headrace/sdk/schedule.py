"""`Schedule`, `ScheduleRecurrence` and `TimeZone` (SDK v1 `azureml.pipeline.core.schedule`).

A schedule submits a published pipeline (or a pipeline endpoint's default version) on a
recurrence, or when files change under a path of a datastore. The workspace's scheduler
fires it: `headrace server` runs one, and `headrace scheduler` runs one on a laptop (see
docs/user-guide.md, "Schedules"). Runs it queues carry its id in the `azureml.scheduleId`
property and "Schedule" as their run source.

Beyond SDK v1: `ScheduleRecurrence.from_cron(...)`, IANA time zone names, datastore
triggers on any datastore with `include_subfolders` and `run_per="batch"`, and
`catch_up` ("latest", "all" or "skip") for slots missed while no scheduler ran.
"""

from __future__ import annotations

import builtins
import enum
from datetime import datetime
from typing import TYPE_CHECKING, Any

from headrace.errors import UserError

if TYPE_CHECKING:
    from headrace.sdk.runs import PipelineRun
    from headrace.sdk.workspace import Workspace
    from headrace.store.records import ScheduleRecord

__all__ = ["Schedule", "ScheduleRecurrence", "TimeZone"]


class TimeZone(str, enum.Enum):
    """SDK v1's time zones (Windows names); any IANA name is accepted too."""

    UTC = "UTC"
    GMTStandardTime = "GMT Standard Time"
    GreenwichStandardTime = "Greenwich Standard Time"
    WEuropeStandardTime = "W. Europe Standard Time"
    CentralEuropeStandardTime = "Central Europe Standard Time"
    RomanceStandardTime = "Romance Standard Time"
    CentralEuropeanStandardTime = "Central European Standard Time"
    EEuropeStandardTime = "E. Europe Standard Time"
    FLEStandardTime = "FLE Standard Time"
    GTBStandardTime = "GTB Standard Time"
    RussianStandardTime = "Russian Standard Time"
    TurkeyStandardTime = "Turkey Standard Time"
    IsraelStandardTime = "Israel Standard Time"
    ArabianStandardTime = "Arabian Standard Time"
    IndiaStandardTime = "India Standard Time"
    ChinaStandardTime = "China Standard Time"
    SingaporeStandardTime = "Singapore Standard Time"
    TokyoStandardTime = "Tokyo Standard Time"
    KoreaStandardTime = "Korea Standard Time"
    AUSEasternStandardTime = "AUS Eastern Standard Time"
    EAustraliaStandardTime = "E. Australia Standard Time"
    NewZealandStandardTime = "New Zealand Standard Time"
    EasternStandardTime = "Eastern Standard Time"
    CentralStandardTime = "Central Standard Time"
    MountainStandardTime = "Mountain Standard Time"
    USMountainStandardTime = "US Mountain Standard Time"
    PacificStandardTime = "Pacific Standard Time"
    AlaskanStandardTime = "Alaskan Standard Time"
    HawaiianStandardTime = "Hawaiian Standard Time"
    AtlanticStandardTime = "Atlantic Standard Time"
    ESouthAmericaStandardTime = "E. South America Standard Time"
    SAPacificStandardTime = "SA Pacific Standard Time"
    CentralAmericaStandardTime = "Central America Standard Time"
    SouthAfricaStandardTime = "South Africa Standard Time"
    EgyptStandardTime = "Egypt Standard Time"


class ScheduleRecurrence:
    """How often a schedule fires (SDK v1 `ScheduleRecurrence`); invalid combinations raise
    UserError at once, naming the rule."""

    def __init__(
        self,
        frequency: str,
        interval: int,
        start_time: datetime | str | None = None,
        time_zone: TimeZone | str | None = None,
        hours: builtins.list[int] | None = None,
        minutes: builtins.list[int] | None = None,
        week_days: builtins.list[str] | None = None,
        time_of_day: str | None = None,
    ) -> None:
        from headrace.engine.recurrence import check_recurrence

        self._data = check_recurrence(
            frequency,
            interval,
            start_time=start_time,
            time_zone=time_zone,
            hours=hours,
            minutes=minutes,
            week_days=week_days,
            time_of_day=time_of_day,
        )

    @classmethod
    def from_cron(
        cls,
        expression: str,
        time_zone: TimeZone | str | None = None,
        start_time: datetime | str | None = None,
    ) -> ScheduleRecurrence:
        """A five-field cron expression ("0 6 * * 1-5"; @daily, @hourly, ... too), in the
        wall clock of `time_zone` (headrace extension)."""
        from headrace.engine.recurrence import check_recurrence

        self = cls.__new__(cls)
        self._data = check_recurrence(
            None, None, cron=expression, time_zone=time_zone, start_time=start_time
        )
        return self

    @classmethod
    def _from_dict(cls, data: dict[str, Any]) -> ScheduleRecurrence:
        self = cls.__new__(cls)
        self._data = dict(data)
        return self

    def validate(self) -> None:
        """Checked when made; kept for SDK v1 code that calls it."""

    @property
    def frequency(self) -> str:
        return str(self._data["frequency"])

    @property
    def interval(self) -> int:
        return int(self._data["interval"])

    @property
    def start_time(self) -> str | None:
        value = self._data.get("start_time")
        return None if value is None else str(value)

    @property
    def time_zone(self) -> str | None:
        value = self._data.get("time_zone")
        return None if value is None else str(value)

    @property
    def hours(self) -> builtins.list[int] | None:
        return self._data.get("hours")

    @property
    def minutes(self) -> builtins.list[int] | None:
        return self._data.get("minutes")

    @property
    def week_days(self) -> builtins.list[str] | None:
        return self._data.get("week_days")

    @property
    def time_of_day(self) -> str | None:
        return self._data.get("time_of_day")

    @property
    def cron(self) -> str | None:
        """The cron expression of a `from_cron` recurrence."""
        return self._data.get("cron")

    def _as_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self._data.items() if k != "anchor"}

    def __repr__(self) -> str:
        from headrace.engine.recurrence import describe

        return f"ScheduleRecurrence({describe(self._data)})"


def _datastore_name(datastore: Any) -> str | None:
    if datastore is None:
        return None
    if isinstance(datastore, str):
        return datastore
    name = getattr(datastore, "name", None)
    if not isinstance(name, str):
        raise UserError(
            f"datastore must be a Datastore (or its name), got {type(datastore).__name__}."
        )
    return name


def _recurrence(recurrence: Any) -> dict[str, Any] | None:
    if recurrence is None:
        return None
    if not isinstance(recurrence, ScheduleRecurrence):
        raise UserError(
            f"recurrence must be a ScheduleRecurrence, got {type(recurrence).__name__}."
        )
    return recurrence._as_dict()


class Schedule:
    """A schedule of a published pipeline or pipeline endpoint (SDK v1 `Schedule`)."""

    def __init__(self, workspace: Workspace, _record: ScheduleRecord) -> None:
        self._workspace = workspace
        self._record = _record

    # -- creating --------------------------------------------------------------------------
    @staticmethod
    def create(
        workspace: Workspace,
        name: str,
        pipeline_id: str,
        experiment_name: str,
        recurrence: ScheduleRecurrence | None = None,
        description: str | None = None,
        pipeline_parameters: dict[str, Any] | None = None,
        wait_for_provisioning: bool = False,
        wait_timeout: int = 3600,
        datastore: Any = None,
        polling_interval: float = 5,
        data_path_parameter_name: str | None = None,
        continue_on_step_failure: bool | None = None,
        path_on_datastore: str | None = None,
        _workflow_provider: Any = None,
        _service_endpoint: Any = None,
        *,
        include_subfolders: bool = False,
        run_per: str = "file",
        catch_up: str = "latest",
    ) -> Schedule:
        """Schedule published pipeline `pipeline_id` on `recurrence`, or on changed files
        under `path_on_datastore` of `datastore` (checked every `polling_interval` minutes).
        It is Active at once (`wait_for_provisioning` has nothing to wait for)."""
        return Schedule._create(
            workspace,
            name=name,
            pipeline_id=pipeline_id,
            experiment_name=experiment_name,
            recurrence=recurrence,
            description=description,
            pipeline_parameters=pipeline_parameters,
            datastore=datastore,
            polling_interval=polling_interval,
            data_path_parameter_name=data_path_parameter_name,
            continue_on_step_failure=continue_on_step_failure,
            path_on_datastore=path_on_datastore,
            include_subfolders=include_subfolders,
            run_per=run_per,
            catch_up=catch_up,
        )

    @staticmethod
    def create_for_pipeline_endpoint(
        workspace: Workspace,
        name: str,
        pipeline_endpoint_id: str,
        experiment_name: str,
        recurrence: ScheduleRecurrence | None = None,
        description: str | None = None,
        pipeline_parameters: dict[str, Any] | None = None,
        wait_for_provisioning: bool = False,
        wait_timeout: int = 3600,
        datastore: Any = None,
        polling_interval: float = 5,
        data_path_parameter_name: str | None = None,
        continue_on_step_failure: bool | None = None,
        path_on_datastore: str | None = None,
        _workflow_provider: Any = None,
        _service_endpoint: Any = None,
        *,
        include_subfolders: bool = False,
        run_per: str = "file",
        catch_up: str = "latest",
    ) -> Schedule:
        """As `create`, for a pipeline endpoint: each fire submits its default version then."""
        return Schedule._create(
            workspace,
            name=name,
            pipeline_endpoint_id=pipeline_endpoint_id,
            experiment_name=experiment_name,
            recurrence=recurrence,
            description=description,
            pipeline_parameters=pipeline_parameters,
            datastore=datastore,
            polling_interval=polling_interval,
            data_path_parameter_name=data_path_parameter_name,
            continue_on_step_failure=continue_on_step_failure,
            path_on_datastore=path_on_datastore,
            include_subfolders=include_subfolders,
            run_per=run_per,
            catch_up=catch_up,
        )

    @staticmethod
    def _create(workspace: Workspace, **fields: Any) -> Schedule:
        from headrace.sdk.pipeline import parameter_values

        recurrence = fields.pop("recurrence")
        datastore = _datastore_name(fields.pop("datastore"))
        if recurrence is not None and datastore is not None:
            raise UserError(
                "A schedule takes a recurrence or a datastore, not both: give recurrence= for "
                "a time schedule, or datastore= for a trigger on changed files."
            )
        fields["pipeline_parameters"] = parameter_values(fields["pipeline_parameters"]) or {}
        record = workspace.backend.create_schedule(
            recurrence=_recurrence(recurrence), datastore_name=datastore, **fields
        )
        return Schedule(workspace, record)

    # -- finding ---------------------------------------------------------------------------
    @staticmethod
    def get(
        workspace: Workspace,
        id: str,
        _workflow_provider: Any = None,
        _service_endpoint: Any = None,
    ) -> Schedule:
        return Schedule(workspace, workspace.backend.get_schedule(id))

    @staticmethod
    def list(
        workspace: Workspace,
        active_only: bool = True,
        pipeline_id: str | None = None,
        pipeline_endpoint_id: str | None = None,
        _workflow_provider: Any = None,
        _service_endpoint: Any = None,
    ) -> builtins.list[Schedule]:
        records = workspace.backend.list_schedules(
            active_only=active_only,
            pipeline_id=pipeline_id,
            pipeline_endpoint_id=pipeline_endpoint_id,
        )
        return [Schedule(workspace, r) for r in records]

    @staticmethod
    def get_schedules_for_pipeline_id(
        workspace: Workspace, pipeline_id: str, **_: Any
    ) -> builtins.list[Schedule]:
        return Schedule.list(workspace, active_only=False, pipeline_id=pipeline_id)

    @staticmethod
    def get_schedules_for_pipeline_endpoint_id(
        workspace: Workspace, pipeline_endpoint_id: str, **_: Any
    ) -> builtins.list[Schedule]:
        return Schedule.list(
            workspace, active_only=False, pipeline_endpoint_id=pipeline_endpoint_id
        )

    # -- attributes ------------------------------------------------------------------------
    @property
    def id(self) -> str:
        return self._record.id

    @property
    def name(self) -> str:
        return self._record.name

    @property
    def description(self) -> str | None:
        return self._record.description

    @property
    def pipeline_id(self) -> str | None:
        return self._record.pipeline_id

    @property
    def pipeline_endpoint_id(self) -> str | None:
        return self._record.pipeline_endpoint_id

    @property
    def status(self) -> str:
        return self._record.status

    @property
    def provisioning_status(self) -> str:
        """Always "Completed": there is nothing to provision."""
        return "Completed"

    @property
    def experiment_name(self) -> str:
        return self._record.experiment_name

    @property
    def recurrence(self) -> ScheduleRecurrence | None:
        data = self._record.recurrence
        return None if data is None else ScheduleRecurrence._from_dict(data)

    @property
    def datastore_name(self) -> str | None:
        return self._record.datastore_name

    @property
    def path_on_datastore(self) -> str | None:
        return self._record.path_on_datastore

    @property
    def polling_interval(self) -> float:
        return self._record.polling_interval

    @property
    def data_path_parameter_name(self) -> str | None:
        return self._record.data_path_parameter_name

    @property
    def pipeline_parameters(self) -> dict[str, Any]:
        return dict(self._record.pipeline_parameters)

    @property
    def continue_on_step_failure(self) -> bool | None:
        return self._record.continue_on_step_failure

    @property
    def catch_up(self) -> str:
        return self._record.catch_up

    @property
    def next_fire_time(self) -> datetime | None:
        """When it fires (or polls) next, UTC; None while Disabled (headrace extension)."""
        return self._record.next_fire_at if self.status == "Active" else None

    @property
    def last_error(self) -> str | None:
        """Why the last fire or poll failed, if it did (headrace extension)."""
        error = self._record.last_error
        return None if not error else str(error.get("message"))

    # -- changing --------------------------------------------------------------------------
    def _changed(self, **changes: Any) -> None:
        self._record = self._workspace.backend.update_schedule(self.id, **changes)

    def enable(self, wait_for_provisioning: bool = False, wait_timeout: int = 3600) -> None:
        self._changed(status="Active")

    def disable(self, wait_for_provisioning: bool = False, wait_timeout: int = 3600) -> None:
        self._changed(status="Disabled")

    def update(
        self,
        name: str | None = None,
        description: str | None = None,
        recurrence: ScheduleRecurrence | None = None,
        pipeline_parameters: dict[str, Any] | None = None,
        status: str | None = None,
        wait_for_provisioning: bool = False,
        wait_timeout: int = 3600,
        datastore: Any = None,
        polling_interval: float | None = None,
        data_path_parameter_name: str | None = None,
        continue_on_step_failure: bool | None = None,
        path_on_datastore: str | None = None,
        *,
        experiment_name: str | None = None,
        catch_up: str | None = None,
    ) -> None:
        """Change what is given; a new recurrence starts as a new schedule's would."""
        from headrace.sdk.pipeline import parameter_values

        self._changed(
            name=name,
            description=description,
            recurrence=_recurrence(recurrence),
            pipeline_parameters=None
            if pipeline_parameters is None
            else parameter_values(pipeline_parameters),
            status=status,
            datastore_name=_datastore_name(datastore),
            polling_interval=polling_interval,
            data_path_parameter_name=data_path_parameter_name,
            continue_on_step_failure=continue_on_step_failure,
            path_on_datastore=path_on_datastore,
            experiment_name=experiment_name,
            catch_up=catch_up,
        )

    def refresh(self) -> None:
        self._record = self._workspace.backend.get_schedule(self.id)

    # -- runs ------------------------------------------------------------------------------
    def get_pipeline_runs(self) -> builtins.list[PipelineRun]:
        """The runs this schedule queued, newest first."""
        from headrace.sdk.experiment import Experiment
        from headrace.sdk.runs import PipelineRun

        records = self._workspace.backend.list_schedule_runs(self.id)
        return [
            PipelineRun(Experiment(self._workspace, r.experiment_name), r.id, r) for r in records
        ]

    def get_last_pipeline_run(self) -> PipelineRun | None:
        runs = self.get_pipeline_runs()
        return runs[0] if runs else None

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Schedule) and other.id == self.id

    def __hash__(self) -> int:
        return hash(self.id)

    def __repr__(self) -> str:
        what = (
            repr(self.recurrence)
            if self._record.recurrence is not None
            else f"datastore {self.datastore_name}:{self.path_on_datastore or '/'}"
        )
        return (
            f"Schedule(Name: {self.name}, Id: {self.id}, Status: {self.status}, "
            f"Pipeline Id: {self.pipeline_id or self.pipeline_endpoint_id}, {what})"
        )
