"""One worker process of a ParallelRunStep: loads the entry script, calls `init()` once,
then `run(mini_batch)` for every mini-batch the coordinator (program.py) sends it."""

from __future__ import annotations

import contextlib
import importlib.util
import logging
import os
import sys
import traceback
import types
from multiprocessing.connection import Connection
from typing import Any

from headrace.kinds.parallel import entry


def _install_helpers() -> None:
    """`from azureml_user.parallel_run import EntryScript` and `import azureml.core` work."""
    package = types.ModuleType("azureml_user")
    package.__path__ = []
    package.parallel_run = entry  # type: ignore[attr-defined]
    sys.modules.setdefault("azureml_user", package)
    sys.modules.setdefault("azureml_user.parallel_run", entry)
    from headrace.errors import AliasConflictError

    # Named, not imported: the compat tree is a layer above the kinds (the step runtime
    # starts the alias launcher by name in the same way). With a real azureml package
    # installed, the script uses that one.
    alias = importlib.import_module("headrace.compat.azureml.alias")
    with contextlib.suppress(AliasConflictError):
        alias.install()


def _logger(number: int, log_dir: str, level: str) -> logging.Logger:
    os.makedirs(os.path.join(log_dir, "user"), exist_ok=True)
    logger = logging.getLogger(f"parallel_run.worker_{number}")
    logger.setLevel(level)
    handler = logging.FileHandler(os.path.join(log_dir, "user", f"worker_{number}.txt"))
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    logger.addHandler(handler)
    logger.propagate = False
    return logger


def _load(script: str) -> types.ModuleType:
    path = os.path.abspath(script)
    sys.path.insert(0, os.path.dirname(path))
    spec = importlib.util.spec_from_file_location("entry_script", path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {script!r}")
    module = importlib.util.module_from_spec(spec)
    sys.modules["entry_script"] = module
    spec.loader.exec_module(module)
    return module


def _rows(result: Any) -> list[str]:
    """run()'s result as output lines: a DataFrame's rows (values joined by spaces), or the
    elements of a list."""
    if result is None:
        return []
    if hasattr(result, "itertuples"):
        return [" ".join(str(v) for v in row) for row in result.itertuples(index=False)]
    if isinstance(result, (str, bytes)):
        raise TypeError(f"run() returned a {type(result).__name__}; return a list or a DataFrame")
    return [str(item).replace("\n", " ") for item in result]


def serve(conn: Connection, number: int, settings: dict[str, Any]) -> None:
    """The worker's loop (the target of its process)."""
    entry._STATE.update(
        logger=f"parallel_run.worker_{number}",
        output_dir=settings["output_dir"],
        log_dir=settings["log_dir"],
    )
    sys.argv = [settings["entry_script"], *settings["arguments"]]
    logger = _logger(number, settings["log_dir"], settings["logging_level"])
    _install_helpers()
    try:
        module = _load(settings["entry_script"])
        missing = [n for n in ("init", "run") if not callable(getattr(module, n, None))]
        if missing:
            conn.send(
                (
                    "fatal",
                    f"entry script {settings['entry_script']!r} has no "
                    f"{' and no '.join(m + '()' for m in missing)}; define init() and "
                    "run(mini_batch).",
                )
            )
            return
        module.init()
    except BaseException:
        conn.send(
            (
                "fatal",
                f"init of entry script {settings['entry_script']!r} failed:\n"
                + traceback.format_exc(),
            )
        )
        return
    logger.info("worker %d ready", number)
    conn.send(("ready",))
    while True:
        message = conn.recv()
        if message is None:
            break
        index, batch, size = message
        try:
            rows = _rows(module.run(batch))
            if len(rows) > size:
                raise ValueError(
                    f"run() returned {len(rows)} rows for a mini-batch of {size} items; return "
                    "at most one row per item"
                )
        except BaseException:
            text = traceback.format_exc()
            logger.error("mini-batch %d failed:\n%s", index, text)
            conn.send(("error", index, text))
            continue
        logger.debug("mini-batch %d: %d items, %d rows", index, size, len(rows))
        conn.send(("done", index, rows))
    shutdown = getattr(module, "shutdown", None)
    if callable(shutdown):
        shutdown()
