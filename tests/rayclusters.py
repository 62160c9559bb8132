"""A Ray cluster on this machine for tests: a head with no CPUs and one worker node, every
node on 127.0.0.1, Ray's telemetry and auth off. Modules share one through a module-scoped
fixture; it is shut down by the context manager (never `ray stop`)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

LOOPBACK = "127.0.0.1"
RAY_ENV = {
    "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",
    "RAY_USAGE_STATS_ENABLED": "0",
    "RAY_AUTH_MODE": "disabled",
}


@contextmanager
def local_cluster(num_cpus: int = 2) -> Iterator[Any]:
    """A `ray.cluster_utils.Cluster` with one `num_cpus` worker node, shut down on exit."""
    pytest.importorskip("ray")
    from ray.cluster_utils import Cluster

    with pytest.MonkeyPatch.context() as patch:
        for key, value in RAY_ENV.items():
            patch.setenv(key, value)
        loopback = {"node_ip_address": LOOPBACK}
        cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 0, **loopback})
        cluster.add_node(num_cpus=num_cpus, **loopback)
        cluster.wait_for_nodes()
        try:
            yield cluster
        finally:
            cluster.shutdown()
