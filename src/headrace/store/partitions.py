"""SDK v1's `partition_format`: values read from a dataset file's path.

`Dataset.File.from_files(path, partition_format=...)` and the Tabular factories take a
format such as `'dataset_partition_test/{user}/{season}/{genres}.wav'` or
`'/{Department}/{PartitionDate:yyyy/MM/dd}/data.parquet'`:

- `{name}` matches one path component (text), and becomes a partition key: a string
  column of a TabularDataset, a key ParallelRunStep's `partition_keys` can group by;
- `{name:yyyy/MM/dd}` (any of yyyy, MM, dd, HH, mm, ss, with the separators written in
  the format) matches a date and becomes a datetime column;
- `*` matches within one component, `**` across components; other text matches itself.

As in SDK v1 the format describes the end of each file's path, from the first partition
key on (or from a fixed folder before it). A file is matched on whatever path it has where
it is read (its datastore path, a mounted or downloaded copy): the fixed folders at the
start of the format may be missing there, so the format is also tried without them.
Only the standard library is used here.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from headrace.errors import UserError

__all__ = ["PartitionFormat"]

_TOKEN = re.compile(r"\{([^{}:]*)(?::([^{}]*))?\}|\*\*|\*")
_DATE_PARTS = {"yyyy": (r"\d{4}", "%Y"), "MM": (r"\d{2}", "%m"), "dd": (r"\d{2}", "%d")}
_DATE_PARTS |= {"HH": (r"\d{2}", "%H"), "mm": (r"\d{2}", "%M"), "ss": (r"\d{2}", "%S")}
_DATE_TOKEN = re.compile("|".join(_DATE_PARTS))
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_ .-]*$")


def _date(spec: str, text: str) -> tuple[str, str]:
    """(regex, strptime format) of a date spec such as 'yyyy/MM/dd'."""
    regex, parse, at = [], [], 0
    for match in _DATE_TOKEN.finditer(spec):
        literal = spec[at : match.start()]
        regex.append(re.escape(literal))
        parse.append(literal.replace("%", "%%"))
        pattern, code = _DATE_PARTS[match.group(0)]
        regex.append(pattern)
        parse.append(code)
        at = match.end()
    if not parse or at == 0:
        raise UserError(
            f"partition_format {text!r}: the date format {spec!r} has none of yyyy, MM, dd, "
            "HH, mm, ss; write e.g. '{PartitionDate:yyyy/MM/dd}'."
        )
    regex.append(re.escape(spec[at:]))
    parse.append(spec[at:].replace("%", "%%"))
    return "".join(regex), "".join(parse)


class PartitionFormat:
    """A compiled partition_format; `values(path)` gives a file's partition values."""

    def __init__(self, text: Any) -> None:
        if not isinstance(text, str) or "{" not in text:
            raise UserError(
                f"partition_format must be text with at least one '{{key}}', e.g. "
                f"'/{{user}}/{{season}}/*.wav', not {text!r:.80}."
            )
        self.text = text
        self.keys: list[str] = []
        self.dates: dict[str, str] = {}
        body = text.strip().lstrip("/")
        # Fixed folders before the first key may be missing where the file is read.
        cut = body.rfind("/", 0, body.index("{")) + 1
        fixed = [part for part in body[:cut].split("/") if part]
        rest = body[cut:]
        self._patterns = []
        for skip in range(len(fixed) + 1):
            candidate = "".join(part + "/" for part in fixed[skip:]) + rest
            self._patterns.append(re.compile(r"(?:^|/)" + self._regex(candidate) + "$"))

    def _regex(self, body: str) -> str:
        out, at = [], 0
        keys: list[str] = []
        for match in _TOKEN.finditer(body):
            out.append(re.escape(body[at : match.start()]))
            at = match.end()
            part = match.group(0)
            if part == "**":
                out.append(".*")
            elif part == "*":
                out.append("[^/]*")
            else:
                name, spec = match.group(1).strip(), match.group(2)
                if not _NAME.match(name):
                    raise UserError(
                        f"partition_format {self.text!r}: {part!r} does not name a key; "
                        "write '{name}' or '{name:yyyy/MM/dd}'."
                    )
                if name in keys:
                    raise UserError(f"partition_format {self.text!r} names {name!r} twice.")
                keys.append(name)
                group = f"k{len(keys) - 1}"
                if spec is None:
                    out.append(f"(?P<{group}>[^/]+)")
                else:
                    regex, parse = _date(spec.strip(), self.text)
                    self.dates[name] = parse
                    out.append(f"(?P<{group}>{regex})")
        out.append(re.escape(body[at:]))
        if not self.keys:
            self.keys = keys
        return "".join(out)

    def values(self, path: str) -> dict[str, Any] | None:
        """The partition values of the file at `path` (str, or datetime for a date key);
        None when the path does not fit the format."""
        clean = path.replace("\\", "/")
        for pattern in self._patterns:
            found = pattern.search(clean)
            if found is None:
                continue
            values: dict[str, Any] = {}
            for index, key in enumerate(self.keys):
                raw = found.group(f"k{index}")
                if key in self.dates:
                    try:
                        values[key] = datetime.strptime(raw, self.dates[key])
                    except ValueError:
                        break
                else:
                    values[key] = raw
            else:
                return values
        return None

    def require(self, path: str) -> dict[str, Any]:
        found = self.values(path)
        if found is None:
            raise UserError(
                f"The file {path!r} does not fit partition_format {self.text!r}; the format "
                "describes the end of each file's path (e.g. '/{user}/{season}/*.wav' for "
                "'.../user1/fall/a.wav'): match only such files, or change the format."
            )
        return found
