"""Read a W&B offline run (``<dir>/wandb/offline-run-*/run-<id>.wandb``) with W&B's own protobuf records.

wandb 0.31 ships no Python reader for its run files (its Go core writes them); the records are
``wandb.proto.wandb_internal_pb2.Record`` messages in LevelDB-log framing: a 7-byte file header, then 32 KiB
blocks of chunks, each with a 7-byte header (CRC32, length as 2 bytes little endian, type 1 full / 2 first /
3 middle / 4 last); a block tail shorter than a header is padding. Used by the tests and the docs figure.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from wandb.proto import wandb_internal_pb2

FILE_HEADER = 7
BLOCK = 32 * 1024
CHUNK_HEADER = 7
FULL, FIRST, MIDDLE, LAST = 1, 2, 3, 4


def read_records(path: str | Path) -> list[wandb_internal_pb2.Record]:
    """Every record of the run file ``path`` in order. Raises ``ValueError`` for a file that is not a W&B run."""
    data = Path(path).read_bytes()
    if not data.startswith(b":W&B"):
        raise ValueError(f"{path}: not a W&B run file (no ':W&B' header)")
    records, pending, position = [], b"", FILE_HEADER
    while position + CHUNK_HEADER <= len(data):
        room = BLOCK - position % BLOCK
        if room < CHUNK_HEADER:  # block padding
            position += room
            continue
        length = int.from_bytes(data[position + 4 : position + 6], "little")
        kind = data[position + 6]
        payload = data[position + CHUNK_HEADER : position + CHUNK_HEADER + length]
        position += CHUNK_HEADER + length
        if kind == 0 and length == 0:  # zero fill at the end of a block
            continue
        pending = payload if kind in (FULL, FIRST) else pending + payload
        if kind in (FULL, LAST):
            record = wandb_internal_pb2.Record()
            record.ParseFromString(pending)
            records.append(record)
            pending = b""
    return records


def _items(items: Any) -> dict[str, Any]:
    """Config, history or summary items as key -> decoded JSON value; W&B splits a logged media object
    (``{"val/panel": {"captions": ...}}``) into items with a ``nested_key`` path, which are put back together."""
    values: dict[str, Any] = {}
    for item in items:
        value = json.loads(item.value_json) if item.value_json else None
        path = [item.key] if item.key else list(item.nested_key)
        node = values
        for part in path[:-1]:
            node = node.setdefault(part, {})
        node[path[-1]] = value
    return values


@dataclass
class LoggedTable:
    """A logged W&B table: ``columns``, ``data`` (rows; media cells are dicts with a ``path``) and ``files``
    (path in the table -> the local file W&B staged for upload)."""

    columns: list[str]
    data: list[list[Any]]
    files: dict[str, Path]

    def rows(self) -> list[dict[str, Any]]:
        """The rows as column -> value."""
        return [dict(zip(self.columns, row, strict=True)) for row in self.data]


@dataclass
class OfflineRun:
    """The parts of one offline run the tests and figures read: ``config`` (key -> value), ``history`` (one dict
    per logged step), ``summary``, the run's ``group``/``job_type``/``name``/``tags``, the artifacts it logged
    (``artifacts``: name, type, metadata) and used (``used_artifacts``: names), its ``files`` folder, its
    ``exit_code`` (``None``: the run never finished), whether it was marked ``preempting`` (stopped, to be
    resumed) and whether it ``resumed`` an earlier run of the same id."""

    folder: Path
    run_id: str = ""
    start_time: float = 0.0
    name: str = ""
    group: str = ""
    job_type: str = ""
    tags: list[str] = field(default_factory=list)
    config: dict[str, Any] = field(default_factory=dict)
    history: list[dict[str, Any]] = field(default_factory=list)
    summary: dict[str, Any] = field(default_factory=dict)
    artifacts: list[dict[str, Any]] = field(default_factory=list)
    used_artifacts: list[str] = field(default_factory=list)
    exit_code: int | None = None
    preempting: bool = False
    resumed: bool = False

    @property
    def files(self) -> Path:
        """The run's ``files/`` folder (media under ``media/``)."""
        return self.folder / "files"

    def values(self, key: str) -> list[Any]:
        """Every logged value of ``key``, in order."""
        return [row[key] for row in self.history if key in row]

    def tables(self, key: str) -> list[LoggedTable]:
        """Every table logged under ``key``, in order, read from the artifacts W&B stores them in (an offline
        run's ``files/media/table`` copies hold no media references)."""
        found = []
        for artifact in self.artifacts:
            files = artifact["files"]
            if artifact["type"] == "run_table" and f"{key}.table.json" in files:
                table = json.loads(Path(files[f"{key}.table.json"]).read_text())
                found.append(LoggedTable(table["columns"], table["data"], {k: Path(v) for k, v in files.items()}))
        return found


def read_run(folder: str | Path) -> OfflineRun:
    """The run in ``folder`` (an ``offline-run-*`` folder holding one ``run-<id>.wandb``)."""
    folder = Path(folder)
    files = sorted(folder.glob("run-*.wandb"))
    if len(files) != 1:
        raise ValueError(f"{folder}: expected one run-*.wandb file, found {len(files)}")
    run = OfflineRun(folder)
    for record in read_records(files[0]):
        kind = record.WhichOneof("record_type")
        if kind == "run":
            run.run_id, run.name, run.group = record.run.run_id, record.run.display_name, record.run.run_group
            run.job_type, run.tags = record.run.job_type, list(record.run.tags)
            run.start_time = record.run.start_time.seconds + record.run.start_time.nanos * 1e-9
            run.resumed = run.resumed or record.run.resumed
            run.config.update(_items(record.run.config.update))
        elif kind == "config":
            run.config.update(_items(record.config.update))
        elif kind == "history":
            run.history.append(_items(record.history.item))
        elif kind == "summary":
            run.summary.update(_items(record.summary.update))
        elif kind == "artifact":
            artifact = record.artifact
            metadata = json.loads(artifact.metadata) if artifact.metadata else {}
            files = {entry.path: entry.local_path for entry in artifact.manifest.contents}
            run.artifacts.append({"name": artifact.name, "type": artifact.type, "metadata": metadata, "files": files})
        elif kind == "exit":
            run.exit_code = record.exit.exit_code
        elif kind == "preempting":
            run.preempting = True
        elif kind == "use_artifact":
            run.used_artifacts.append(record.use_artifact.partial.artifact_name or record.use_artifact.id)
    return run


def find_runs(root: str | Path) -> list[OfflineRun]:
    """Every offline run under ``root`` (searched recursively), in the order they started."""
    runs = [read_run(folder) for folder in Path(root).rglob("offline-run-*") if folder.is_dir()]
    return sorted(runs, key=lambda run: run.start_time)
