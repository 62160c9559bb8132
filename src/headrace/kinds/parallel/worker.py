"""One worker process of a ParallelRunStep: loads the entry script, calls `init()` once,
then `run(mini_batch)` for every mini-batch the coordinator (program.py) sends it."""

from __future__ import annotations

import contextlib
import importlib.util
import inspect
import logging
import os
import sys
import traceback
import types
from typing import Any

from headrace.kinds.parallel import entry
from headrace.kinds.parallel.frames import Frames, frame, write_all


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


def _takes_two(function: Any) -> bool:
    """Whether `function` takes a second positional argument."""
    try:
        parameters = list(inspect.signature(function).parameters.values())
    except (TypeError, ValueError):
        return False
    positional = [
        p
        for p in parameters
        if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD, p.VAR_POSITIONAL)
    ]
    return len(positional) >= 2 or any(p.kind == p.VAR_POSITIONAL for p in positional)


class Scorer:
    """One worker's entry script: loaded and init() once (`start`), then run() per
    mini-batch (`score`). Used by a forked process (`serve`) and by a Ray actor (raypool.py)."""

    def __init__(self, number: int, settings: dict[str, Any]) -> None:
        entry._STATE.update(
            logger=f"parallel_run.worker_{number}",
            output_dir=settings["output_dir"],
            log_dir=settings["log_dir"],
        )
        sys.argv = [settings["entry_script"], *settings["arguments"]]
        self.number = number
        self.script = settings["entry_script"]
        self.logger = _logger(number, settings["log_dir"], settings["logging_level"])
        self.module: Any = None
        self.wants_context = False  # run(mini_batch, mini_batch_context), as SDK v1 allows
        _install_helpers()

    def start(self) -> str | None:
        """Load the script and call init(); what went wrong, or None."""
        try:
            module = _load(self.script)
            missing = [n for n in ("init", "run") if not callable(getattr(module, n, None))]
            if missing:
                return (
                    f"entry script {self.script!r} has no "
                    f"{' and no '.join(m + '()' for m in missing)}; define init() and "
                    "run(mini_batch)."
                )
            self.wants_context = _takes_two(module.run)
            module.init()
        except BaseException:
            return f"init of entry script {self.script!r} failed:\n" + traceback.format_exc()
        self.module = module
        self.logger.info("worker %d ready", self.number)
        return None

    def score(self, index: int, batch: Any, size: int) -> tuple[str, int, Any]:
        """("done", index, rows), or ("error", index, traceback)."""
        try:
            data, values = batch, {}
            if isinstance(batch, entry.PartitionedBatch):
                data, values = batch.data, batch.values
            if self.wants_context:
                result = self.module.run(data, entry.MiniBatchContext(values))
            else:
                result = self.module.run(data)
            rows = _rows(result)
            if len(rows) > size:
                raise ValueError(
                    f"run() returned {len(rows)} rows for a mini-batch of {size} items; return "
                    "at most one row per item"
                )
        except BaseException:
            text = traceback.format_exc()
            self.logger.error("mini-batch %d failed:\n%s", index, text)
            return ("error", index, text)
        self.logger.debug("mini-batch %d: %d items, %d rows", index, size, len(rows))
        return ("done", index, rows)

    def finish(self) -> None:
        """The script's shutdown(), if it has one; the log is flushed."""
        shutdown = getattr(self.module, "shutdown", None)
        if callable(shutdown):
            shutdown()
        for handler in self.logger.handlers:
            handler.flush()


def serve(tasks: int, said: int, number: int, settings: dict[str, Any], close: list[int]) -> None:
    """The worker's loop (the target of its process): mini-batches from the pipe `tasks`,
    what it says to the pipe `said` (frames.py). `close`: the coordinator's pipe ends this
    process inherited (its own pipes' other ends, and the other workers' pipes), closed so
    that a worker's end is seen as the end of its pipes."""
    for fd in close:
        with contextlib.suppress(OSError):
            os.close(fd)
    scorer = Scorer(number, settings)
    fatal = scorer.start()
    if fatal is not None:
        write_all(said, frame(("fatal", fatal)))
        return
    write_all(said, frame(("ready",)))
    incoming = Frames(tasks)
    while True:
        message = incoming.next()
        if message is None:
            break
        write_all(said, frame(scorer.score(*message)))
    scorer.finish()
