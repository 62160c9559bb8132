"""Spark masters: which ones headrace runs against, and whether one can be reached.

Shared by the `spark` compute target (compute.py checks a master when it is attached) and
the step's program (program.py checks it again before starting a JVM, so an unreachable
master fails a step in seconds instead of after Spark's retries).

Accepted masters: `local`, `local[N]`, `local[*]`, `local[N,F]` (F task retries), and a
standalone master `spark://host:port` (a comma-separated list of host:port for a master
with standby). Nothing here imports pyspark.
"""

from __future__ import annotations

import re
import socket
from collections.abc import Mapping
from typing import Any

__all__ = [
    "DEFAULT_MASTER",
    "SparkMasterError",
    "check_master",
    "loopback_conf",
    "spark_conf_text",
    "workspace_master",
]

DEFAULT_MASTER = "local[*]"
WORKSPACE_MASTER_KEY = (
    "spark_master"  # in workspace.json: the master of steps not on a spark target
)
CONNECT_SECONDS = 3.0
_LOCAL = re.compile(r"^local(\[(\*|[1-9]\d*)(,\s*[1-9]\d*)?\])?$")
_HOST_PORT = re.compile(r"^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9_.-]+):(\d{1,5})$")
_EXAMPLES = "local[*], local[2] or spark://host:7077"


class SparkMasterError(Exception):
    """A master that cannot be used, said in one line naming the fix."""


def _endpoints(master: str) -> list[tuple[str, int]]:
    found = []
    for part in master[len("spark://") :].split(","):
        match = _HOST_PORT.match(part.strip())
        if not match or not 0 < int(match.group(2)) < 65536:
            raise SparkMasterError(
                f"Spark master {master!r} is not spark://host:port (bad part {part!r}); "
                f"write it like {_EXAMPLES}."
            )
        found.append((match.group(1).strip("[]"), int(match.group(2))))
    return found


def _reach(host: str, port: int, timeout: float) -> str | None:
    """None when `host:port` accepts a TCP connection within `timeout`, else the reason."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return None
    except TimeoutError:
        return f"no answer within {timeout:g} s"
    except OSError as exc:
        return exc.strerror or str(exc)


def check_master(master: Any, *, reach: bool = True, timeout: float = CONNECT_SECONDS) -> str:
    """`master` when headrace can run Spark on it; raises SparkMasterError otherwise.

    A `local[...]` master is checked by its syntax. A `spark://` master must also accept a
    TCP connection on one of its host:port pairs (unless `reach` is false), which takes at
    most `timeout` seconds per pair.
    """
    if not isinstance(master, str) or not master.strip():
        raise SparkMasterError(f"Spark master {master!r} is not a master URL; use {_EXAMPLES}.")
    url: str = master.strip()
    if _LOCAL.match(url):
        return url
    if not url.startswith("spark://"):
        raise SparkMasterError(
            f"Spark master {url!r} is not supported: headrace runs Spark in local mode or "
            f"on a standalone master; use {_EXAMPLES}."
        )
    endpoints = _endpoints(url)
    if not reach:
        return url
    reasons = []
    for host, port in endpoints:
        reason = _reach(host, port, timeout)
        if reason is None:
            return url
        reasons.append(f"{host}:{port}: {reason}")
    raise SparkMasterError(
        f"Spark master {url} cannot be reached ({'; '.join(reasons)}); start the master "
        "(sbin/start-master.sh) or use one that runs, e.g. master='local[*]'."
    )


def spark_conf_text(conf: Any, what: str = "spark_conf") -> dict[str, str]:
    """`conf` (a dict of Spark settings) with text values, as Spark takes them."""
    if conf is None:
        return {}
    if not isinstance(conf, Mapping):
        raise SparkMasterError(
            f"{what} must be a dict of Spark settings, e.g. "
            f"{{'spark.sql.shuffle.partitions': '4'}}, not {type(conf).__name__}."
        )
    text: dict[str, str] = {}
    for key, value in conf.items():
        if not isinstance(key, str) or not key.strip():
            raise SparkMasterError(f"{what} key {key!r} is not a setting name like 'spark.x.y'.")
        if isinstance(value, bool):
            text[key] = "true" if value else "false"
        elif isinstance(value, (str, int, float)):
            text[key] = str(value)
        else:
            raise SparkMasterError(
                f"{what}[{key!r}] is a {type(value).__name__}; Spark settings are text, "
                "numbers or bools."
            )
    return text


def loopback_conf() -> dict[str, str]:
    """Settings that keep a step's Spark driver on 127.0.0.1 with no UI (a step's own
    `spark_conf` overrides them)."""
    return {
        "spark.ui.enabled": "false",
        "spark.ui.showConsoleProgress": "false",
        "spark.driver.host": "127.0.0.1",
        "spark.driver.bindAddress": "127.0.0.1",
        # No /tmp/hsperfdata_<user> left behind by each step's JVM.
        "spark.driver.extraJavaOptions": "-XX:-UsePerfData",
    }


def workspace_master(config: Mapping[str, Any] | None) -> str:
    """The workspace setting `spark_master` (workspace.json), else local[*]."""
    value = (config or {}).get(WORKSPACE_MASTER_KEY)
    return value.strip() if isinstance(value, str) and value.strip() else DEFAULT_MASTER
