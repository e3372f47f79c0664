"""The trainer's last snapshots on its own disk: what `rtrank rollback` reaches once
model-updates has been trimmed past a version (the topic keeps two snapshots' worth).

One file per snapshot, ``v<version>.safetensors``, holding the update's own bytes
(`rtrank.model.updates.encode_update`: safetensors, never pickle), written to a temporary
name and renamed, so a crash never leaves half a file under a version's name. The newest
``keep`` are kept. The directory is the trainer's alone (no worker reads it: model sync
stays on Kafka).
"""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path

from rtrank.model.update_error import UpdateError
from rtrank.model.updates import Snapshot, decode_update, encode_update

log = logging.getLogger(__name__)

NAME = re.compile(r"^v(\d+)\.safetensors$")


class SnapshotArchive:
    def __init__(self, directory: Path, keep: int) -> None:
        self.directory, self.keep = directory, keep

    def save(self, snapshot: Snapshot) -> None:
        """Keep ``snapshot``, then delete all but the newest ``keep``.

        Raises:
            OSError: the directory cannot be written.
        """
        self.directory.mkdir(parents=True, exist_ok=True)
        path = self._path(snapshot.version)
        tmp = path.with_suffix(".tmp")
        tmp.write_bytes(encode_update(snapshot))
        os.replace(tmp, path)
        for version in self.versions()[: -self.keep]:
            self._path(version).unlink(missing_ok=True)

    def versions(self) -> list[int]:
        """The versions kept, oldest first."""
        if not self.directory.is_dir():
            return []
        found = (NAME.match(p.name) for p in self.directory.iterdir())
        return sorted(int(m.group(1)) for m in found if m)

    def load(self, version: int) -> Snapshot | None:
        """The snapshot of ``version``; None when it is not kept or its file is unreadable
        (a warning says which)."""
        path = self._path(version)
        try:
            snapshot = decode_update(path.read_bytes())
        except FileNotFoundError:
            return None
        except (OSError, UpdateError) as e:
            log.warning("archived snapshot %s unreadable: %s", path, e)
            return None
        if not isinstance(snapshot, Snapshot) or snapshot.version != version:
            log.warning("archived snapshot %s is not version %d's snapshot", path, version)
            return None
        return snapshot

    def _path(self, version: int) -> Path:
        return self.directory / f"v{version}.safetensors"
