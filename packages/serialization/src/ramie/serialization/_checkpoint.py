"""CheckpointManager: numbered, atomic, optionally background checkpoints in a directory.

Each save writes a step into a hidden temporary directory, fsyncs every file
and the directory, writes the ``COMMIT`` marker last, then renames the
directory into place (``step_<n>``) and fsyncs the parent. A crash at any
instant leaves either the old set of checkpoints or the new one, never a
half-written step that looks committed.

Readers (opening a manager, listing, ``restore``, ``metadata``, ``check``)
change nothing on disk. Writers coordinate through ``fcntl`` locks
(``_locks``): renaming a step into place, the retention policy and the removal
of leftovers run under a directory lock, and a writer removes only its own
temporary directories or those of writers that provably died. A step directory
is removed only by the retention policy, never because it fails to verify.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import jax
import numpy as np

from . import _checkpoint_io as io
from . import _errors, _locks
from ._background import BackgroundSaves
from ._msgpack import Segments, encode
from ._state_dict import apply, check, convert, to_state_dict

_STEP_DIR = re.compile(r"^step_(0|[1-9][0-9]*)$")


def _snapshot(tree: Any, copy: bool) -> Any:
    """The state dict of ``tree`` with every array on the host (copied when ``copy``)."""

    def host(x: Any) -> Any:
        if isinstance(x, jax.Array):
            return np.array(x) if copy else np.asarray(x)
        if isinstance(x, np.ndarray):
            return x.copy() if copy else x
        return x

    state_dict = to_state_dict(tree)
    for node, key, value in list(io.iter_nodes(state_dict)):
        if node is None:
            state_dict = host(value)
        elif not isinstance(value, (dict, list)):
            node[key] = host(value)
    return state_dict


@dataclass(frozen=True)
class StepStatus:
    """What ``CheckpointManager.check()`` found for one step directory.

    ``status`` is ``"good"`` (every file matches its ``COMMIT`` record),
    ``"corrupt"`` (``detail`` says which file and what failed) or
    ``"incomplete"`` (no ``COMMIT`` yet: being written or copied in).
    """

    step: int
    status: Literal["good", "corrupt", "incomplete"]
    detail: str = ""


class CheckpointManager:
    """Save and restore numbered checkpoints of a State (or any tree) in ``directory``.

    ``max_to_keep`` keeps only the newest N steps (None: all). ``keep_best``
    instead keeps the N best by a metric: a metadata key or a function of the
    metadata, higher is better unless ``best_mode="min"``; the newest step is
    always kept too. A NaN or infinite metric (or a step whose metadata cannot be
    read) never ranks as best: such steps rank below every finite one, newest
    first among themselves; equal metrics keep the newer step.

    ``background=True`` makes ``save`` return as soon as the arrays are copied to
    host memory while a thread writes them. Each thread has at most one
    background save in flight; its failure is raised by that thread's next
    ``save()`` or ``wait()`` (never by another thread's call). A failure nobody
    saw is printed to stderr when the interpreter exits, with exit status 1.

    Opening a manager, ``all_steps``, ``latest_step``, ``restore``, ``metadata``
    and ``check`` change nothing on disk. Several threads may share one manager,
    and several managers and processes may save into one directory: each
    committed step stays committed until the retention policy removes it.
    Damage is reported, never skipped: restoring a step that fails verification
    raises ``CheckpointCorruptError`` naming the step, the file and the check;
    ``check()`` lists each step as good, corrupt or incomplete.

    >>> import tempfile, jax, jax.numpy as jnp
    >>> from ramie import core
    >>> from ramie.serialization import CheckpointManager
    >>> tmp = tempfile.TemporaryDirectory()
    >>> manager = CheckpointManager(tmp.name, max_to_keep=2)
    >>> state = core.State({"w": core.Param(jnp.ones(3))})
    >>> for step in range(3):
    ...     manager.save(step, state, metadata={"loss": 1.0 / (step + 1)})
    >>> manager.all_steps(), manager.latest_step()
    ([1, 2], 2)
    >>> [s.status for s in manager.check()]
    ['good', 'good']
    >>> abstract = jax.eval_shape(lambda: state)
    >>> manager.restore(target=abstract).w.value.tolist()
    [1.0, 1.0, 1.0]
    >>> tmp.cleanup()
    """

    def __init__(
        self,
        directory: str | os.PathLike,
        *,
        max_to_keep: int | None = None,
        keep_best: str | Callable[[Mapping[str, Any]], float] | None = None,
        best_mode: Literal["max", "min"] = "max",
        background: bool = False,
    ):
        if max_to_keep is not None and (type(max_to_keep) is not int or max_to_keep < 1):
            raise ValueError(f"max_to_keep must be a positive int or None; got {max_to_keep!r}")
        if best_mode not in ("max", "min"):
            raise ValueError(f"best_mode must be 'max' or 'min'; got {best_mode!r}")
        self.directory = Path(directory).absolute()
        self.max_to_keep = max_to_keep
        self.keep_best = keep_best
        self.best_mode = best_mode
        self.background = background
        self._writer = _locks.WriterLock(self.directory)
        self._saves = BackgroundSaves(self.directory)

    # -- listing ---------------------------------------------------------------
    def _step_dir(self, step: int) -> Path:
        return self.directory / f"step_{step}"

    def _scan(self) -> tuple[list[int], list[int]]:
        """Committed steps (with a ``COMMIT``) and incomplete ones (without), sorted."""
        committed, incomplete = [], []
        try:
            entries = list(os.scandir(self.directory))
        except FileNotFoundError:
            return [], []
        for entry in entries:
            match = _STEP_DIR.match(entry.name)
            if match and entry.is_dir():
                step = int(match.group(1))
                has_commit = os.path.lexists(os.path.join(entry.path, io.COMMIT_FILE))
                (committed if has_commit else incomplete).append(step)
        return sorted(committed), sorted(incomplete)

    def all_steps(self) -> list[int]:
        """Every committed step (its ``COMMIT`` marker is present), oldest first.

        A committed step may still fail verification when restored; ``check()``
        tells. Steps without a marker (being copied in) are not listed.
        """
        return self._scan()[0]

    def latest_step(self) -> int | None:
        """The newest committed step, or None when there is none."""
        steps = self.all_steps()
        return steps[-1] if steps else None

    def check(self, steps: list[int] | None = None) -> list[StepStatus]:
        """Verify steps (every step directory by default): one ``StepStatus`` each, by step.

        Reads every file and checks sizes and CRC-32s against the ``COMMIT``
        record, as ``restore`` does, without building the arrays. Changes nothing.

        >>> import tempfile, numpy as np
        >>> from ramie.serialization import CheckpointManager
        >>> tmp = tempfile.TemporaryDirectory()
        >>> manager = CheckpointManager(tmp.name)
        >>> manager.save(0, {"x": np.zeros(2)})
        >>> manager.check()
        [StepStatus(step=0, status='good', detail='')]
        >>> tmp.cleanup()
        """
        committed, incomplete = self._scan()
        wanted = sorted(committed + incomplete) if steps is None else sorted(steps)
        out = []
        for step in wanted:
            if step in incomplete:
                out.append(StepStatus(step, "incomplete", f"{self._step_dir(step)} has no COMMIT"))
                continue
            try:
                self._verify(step)
            except _errors.CheckpointError as e:
                out.append(StepStatus(step, "corrupt", str(e)))
            else:
                out.append(StepStatus(step, "good"))
        return out

    def _verify(self, step: int) -> None:
        step_dir = self._step_dir(step)
        with self._reading(step_dir, step):
            commit = io.read_commit(step_dir, step)
            index = io.read_small(step_dir, io.INDEX_FILE, commit, verify=True)
            info = commit["files"][io.STATE_FILE]
            try:
                io.parse_index(index, info["size"])
            except ValueError as e:
                raise io.Corrupt(io.INDEX_FILE, str(e)) from None
            self._read_metadata(step_dir, commit)
            io.verify_file(step_dir / io.STATE_FILE, info["size"], info["crc32"])

    # -- saving ----------------------------------------------------------------
    def save(self, step: int, state: Any, *, metadata: Mapping[str, Any] | None = None) -> None:
        """Write ``state`` as checkpoint ``step`` (atomically; in the background if asked).

        ``metadata`` is a JSON-serializable mapping kept beside the state
        (``manager.metadata(step)`` reads it back). With ``background=True``
        this first waits for the calling thread's previous background save and
        raises its error, if it failed.
        """
        self._saves.wait()
        if type(step) is not int or step < 0:
            raise _errors.CheckpointError(_errors.BAD_STEP.format(found=step))
        if self._step_dir(step).exists():
            raise _errors.CheckpointError(
                _errors.STEP_EXISTS.format(step=step, directory=self.directory)
            )
        try:
            meta_bytes = json.dumps(dict(metadata or {}), allow_nan=True).encode()
        except (TypeError, ValueError) as e:
            raise _errors.CheckpointError(_errors.BAD_METADATA.format(detail=e)) from None
        if self.keep_best is not None:
            self._score(step, dict(metadata or {}), strict=True)
        state_dict = _snapshot(state, copy=self.background)
        segments = Segments()
        skeleton = encode(state_dict, segments)
        if not self.background:
            self._write(step, segments, skeleton, meta_bytes)
            return
        self._saves.start(step, lambda: self._write(step, segments, skeleton, meta_bytes))

    def _write(self, step: int, segments: Segments, skeleton: Any, meta_bytes: bytes) -> None:
        where = self.directory
        tmp, committed = None, False
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            token = self._writer.token()
            tmp = where = self.directory / _locks.tmp_name(step, token)
            tmp.mkdir()
            where = tmp / io.STATE_FILE
            files = {io.STATE_FILE: io.write_parts(where, segments.parts)}
            where = tmp / io.INDEX_FILE
            files[io.INDEX_FILE] = io.write_index(where, skeleton, segments.leaves)
            where = tmp / io.METADATA_FILE
            files[io.METADATA_FILE] = io.write_small(where, meta_bytes)
            where = tmp / io.COMMIT_FILE
            io.write_small(where, io.encode_commit(step, files))
            where = tmp
            io.fsync_dir(tmp)
            with _locks.directory_lock(self.directory):
                final = self._step_dir(step)
                if os.path.lexists(final):
                    raise _errors.CheckpointError(
                        _errors.STEP_EXISTS.format(step=step, directory=self.directory)
                    )
                where = final
                os.rename(tmp, final)
                tmp, committed = None, True
                where = self.directory
                io.fsync_dir(self.directory)
                self._retain(token)
                _locks.remove_abandoned(self.directory, token)
        except OSError as e:
            raise self._save_failed(step, where, tmp, committed, e) from e
        except BaseException:
            if tmp is not None:
                _locks.remove_tree(tmp)
            raise

    def _save_failed(
        self, step: int, where: Path, tmp: Path | None, committed: bool, error: OSError
    ) -> _errors.CheckpointError:
        detail = f"{type(error).__name__}: {error}"
        if committed:
            message = _errors.AFTER_COMMIT_FAILED.format(step=step, path=where, detail=detail)
            return _errors.CheckpointError(message)
        if tmp is not None:
            _locks.remove_tree(tmp)
            if os.path.lexists(tmp):
                return _errors.CheckpointError(
                    _errors.SAVE_FAILED_KEPT.format(
                        step=step, path=where, detail=detail, tmp=tmp, cleanup="it is still there"
                    )
                )
        return _errors.CheckpointError(
            _errors.SAVE_FAILED.format(step=step, path=where, detail=detail)
        )

    def wait(self) -> None:
        """Block until the calling thread's background save is done; raise its error if any."""
        self._saves.wait()

    # -- keeping ---------------------------------------------------------------
    def _score(self, step: int, metadata: Mapping[str, Any], strict: bool = False) -> float | None:
        """The step's rank value (higher is better), or None when it cannot rank as best."""
        if callable(self.keep_best):
            value = self.keep_best(metadata)
        elif self.keep_best in metadata:
            value = metadata[self.keep_best]
        elif strict:
            raise _errors.CheckpointError(
                _errors.MISSING_BEST_METRIC.format(
                    metric=self.keep_best, step=step, metadata=dict(metadata)
                )
            )
        else:
            return None
        try:
            number = float(value)
        except (TypeError, ValueError):
            if strict:
                raise _errors.CheckpointError(
                    _errors.BAD_METRIC.format(metric=self.keep_best, step=step, value=value)
                ) from None
            return None
        if not math.isfinite(number):
            return None
        return number if self.best_mode == "max" else -number

    def _stored_score(self, step: int) -> float | None:
        try:
            return self._score(step, self._metadata(step))
        except _errors.CheckpointError:
            return None  # unreadable metadata never ranks as best

    def _keep(self, steps: list[int]) -> set[int]:
        if self.keep_best is None:
            return set(steps[-self.max_to_keep :])
        scores = {s: self._stored_score(s) for s in steps}
        ranked = sorted(
            steps,
            key=lambda s: (scores[s] is not None, scores[s] or 0.0, s),
            reverse=True,
        )
        return set(ranked[: self.max_to_keep]) | {steps[-1]}

    def _retain(self, token: str) -> None:
        """Apply max_to_keep / keep_best; the directory lock is held."""
        steps = self.all_steps()
        if self.max_to_keep is None or len(steps) <= self.max_to_keep:
            return
        keep = self._keep(steps)
        for step in steps:
            if step in keep:
                continue
            trash = self.directory / _locks.trash_name(step, token)
            try:
                os.rename(self._step_dir(step), trash)
            except FileNotFoundError:
                continue  # removed by another writer (or by hand) meanwhile
            io.fsync_dir(self.directory)
            _locks.remove_tree(trash)

    # -- restoring -------------------------------------------------------------
    @contextlib.contextmanager
    def _reading(self, step_dir: Path, step: int) -> Iterator[None]:
        """Turn what goes wrong while reading a step into the library's errors."""
        try:
            yield
        except io.Corrupt as e:
            raise _errors.CheckpointCorruptError(
                _errors.CORRUPT_FILE.format(file=step_dir / e.name, detail=e, step=step)
            ) from None
        except io.NotRegularFile as e:
            detail = f"it is a {e.kind}, not a regular file"
            raise _errors.CheckpointCorruptError(
                _errors.CORRUPT_FILE.format(file=e.path, detail=detail, step=step)
            ) from None
        except OSError as e:
            if not step_dir.exists():
                raise _errors.CheckpointError(
                    _errors.STEP_VANISHED.format(step=step, directory=self.directory)
                ) from e
            file = Path(e.filename) if e.filename else step_dir
            if isinstance(e, FileNotFoundError):
                raise _errors.CheckpointCorruptError(
                    _errors.CORRUPT_FILE.format(file=file, detail="it is missing", step=step)
                ) from None
            raise _errors.CheckpointError(
                _errors.READ_FAILED.format(file=file, step=step, detail=e)
            ) from e

    def _choose(self, step: int | None) -> tuple[int, Path]:
        steps = self.all_steps()
        chosen = steps[-1] if step is None and steps else step
        if chosen is None or chosen not in steps:
            raise _errors.CheckpointError(
                _errors.NO_CHECKPOINT.format(
                    directory=self.directory,
                    which="" if step is None else f" for step {step}",
                    steps=steps,
                )
            )
        return chosen, self._step_dir(chosen)

    def metadata(self, step: int | None = None) -> dict[str, Any]:
        """The metadata saved with ``step`` (the latest when None)."""
        self._saves.join()
        return self._metadata(step)

    def _metadata(self, step: int | None) -> dict[str, Any]:
        chosen, step_dir = self._choose(step)
        with self._reading(step_dir, chosen):
            return self._read_metadata(step_dir, io.read_commit(step_dir, chosen))

    @staticmethod
    def _read_metadata(step_dir: Path, commit: dict) -> dict[str, Any]:
        if io.METADATA_FILE not in commit["files"]:
            return {}
        data = io.read_small(step_dir, io.METADATA_FILE, commit, verify=True)
        try:
            meta = json.loads(data)
        except ValueError as e:
            raise io.Corrupt(io.METADATA_FILE, f"it is not valid JSON ({e})") from None
        if not isinstance(meta, dict):
            raise io.Corrupt(io.METADATA_FILE, f"it holds a {type(meta).__name__}, not a dict")
        return meta

    def restore(
        self,
        step: int | None = None,
        target: Any = None,
        *,
        strict: bool = True,
        verify: bool = True,
    ) -> Any:
        """Read checkpoint ``step`` (the latest committed when None), into ``target`` if given.

        ``target`` may be a State or pure dict of real arrays, or an abstract one
        (``jax.eval_shape``, ``jax.ShapeDtypeStruct`` leaves): nothing is
        materialised besides the restored arrays, which land on the target
        leaves' shardings. Keys, shapes and dtypes are checked before any array
        is read (see ``from_state_dict`` for ``strict``). Without a target, the
        nested dict of numpy arrays is returned. ``verify`` checks every file's
        CRC-32 (metadata included) against the ``COMMIT`` record, which checks its
        own. A step that fails a check raises
        ``CheckpointCorruptError``; an older step is never returned instead.
        """
        self._saves.join()
        chosen, step_dir = self._choose(step)
        with self._reading(step_dir, chosen):
            commit = io.read_commit(step_dir, chosen)
            index = io.read_small(step_dir, io.INDEX_FILE, commit, verify)
            if verify and io.METADATA_FILE in commit["files"]:
                io.read_small(step_dir, io.METADATA_FILE, commit, verify)
            size = commit["files"][io.STATE_FILE]["size"]
            try:
                skeleton, leaves = io.parse_index(index, size)
            except ValueError as e:
                raise io.Corrupt(io.INDEX_FILE, str(e)) from None
            bad: set[str] = set()
            if target is not None:
                pending = io.fill(skeleton, lambda n: io.Pending(leaves[n][1], leaves[n][2]))
                bad = check(target, pending, strict=strict, what=f"restore(step={chosen})")
                skeleton, leaves = io.parse_index(index, size)
            crc = commit["files"][io.STATE_FILE]["crc32"] if verify else None
            arrays = io.read_leaves(step_dir / io.STATE_FILE, leaves, size, crc)
        data = io.fill(skeleton, arrays.__getitem__)
        if target is None:
            return data
        return apply(target, data, bad, convert)
