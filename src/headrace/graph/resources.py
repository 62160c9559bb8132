"""What a step asks of the node it runs on, in one spelling.

Steps (and RunConfiguration) take `resources={"cpu": 2, "gpu": 1, "memory": "4GB", "tpu": 1}`;
the graph keeps Ray's names: "CPU" and "GPU" counts, "memory" in bytes, anything else a custom
resource count. `num_cpus`/`num_gpus` are accepted as Ray spells them.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any

__all__ = ["describe_resources", "normalize_resources", "parse_size"]

_ALIASES = {
    "cpu": "CPU",
    "cpus": "CPU",
    "num_cpus": "CPU",
    "gpu": "GPU",
    "gpus": "GPU",
    "num_gpus": "GPU",
    "memory": "memory",
}
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(B|KB|MB|GB|TB|KiB|MiB|GiB|TiB)?\s*$", re.IGNORECASE)
_UNITS = {
    "b": 1,
    "kb": 10**3,
    "mb": 10**6,
    "gb": 10**9,
    "tb": 10**12,
    "kib": 2**10,
    "mib": 2**20,
    "gib": 2**30,
    "tib": 2**40,
}


def parse_size(value: Any) -> int:
    """Bytes from an int or a text like '512MB' or '4GiB'; ValueError naming the fix."""
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not a size")
    if isinstance(value, (int, float)) and value >= 0:
        return int(value)
    match = _SIZE.match(value) if isinstance(value, str) else None
    if not match:
        raise ValueError(f"{value!r} is not a size; write it like '512MB' or '4GB', or bytes")
    return int(float(match.group(1)) * _UNITS[(match.group(2) or "b").lower()])


def normalize_resources(raw: Mapping[str, Any]) -> dict[str, float]:
    """Ray's names and numbers for a step's `resources`; ValueError saying what is wrong."""
    result: dict[str, float] = {}
    for key, value in raw.items():
        if not isinstance(key, str) or not key:
            raise ValueError(f"resource names are texts, not {key!r}")
        name = _ALIASES.get(key.lower(), key)
        if name == "memory":
            result[name] = float(parse_size(value))
            continue
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError(f"resource {key!r} must be a number, not {value!r}")
        if value < 0 or math.isnan(value) or math.isinf(value):
            raise ValueError(f"resource {key!r} must be 0 or more, not {value!r}")
        result[name] = float(value)
    return result


def describe_resources(resources: Mapping[str, float]) -> str:
    """'2 CPU, 1 GPU, 4.0 GB memory' for messages."""
    parts = []
    for name, value in sorted(resources.items()):
        if name == "memory":
            parts.append(f"{value / 1e9:.1f} GB memory")
        elif not name.startswith("node:"):
            parts.append(f"{value:g} {name}")
    return ", ".join(parts) or "nothing"
