"""CheckpointManager: numbered, atomic, optionally background checkpoints in a directory.

Each save writes a step into a hidden temporary directory, fsyncs every file
and the directory, writes the ``COMMIT`` marker last, then renames the
directory into place (``step_<n>``) and fsyncs the parent. A crash at any
instant leaves either the old set of checkpoints or the new one, never a
half-written step that looks committed; leftovers are removed the next time a
manager opens the directory.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import threading
import uuid
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Literal

import jax
import numpy as np

from . import _checkpoint_io as io
from . import _errors
from ._msgpack import Segments, encode
from ._state_dict import apply, check, convert, to_state_dict

_STEP_DIR = re.compile(r"^step_(0|[1-9][0-9]*)$")
_TMP_PREFIX, _TRASH_PREFIX = ".tmp-", ".trash-"


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


class CheckpointManager:
    """Save and restore numbered checkpoints of a State (or any tree) in ``directory``.

    ``max_to_keep`` keeps only the newest N steps (None: all). ``keep_best``
    instead keeps the N best by a metric: a metadata key or a function of the
    metadata, higher is better unless ``best_mode="min"``; the newest step is
    always kept too. ``background=True`` makes ``save`` return as soon as the
    arrays are copied to host memory while a thread writes them; ``wait()``
    blocks until it is done (and re-raises its error, as the next ``save`` does).

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
        self._thread: threading.Thread | None = None
        self._error: tuple[int, BaseException] | None = None
        self.directory.mkdir(parents=True, exist_ok=True)
        self._clean_up()

    # -- listing ---------------------------------------------------------------
    def _step_dir(self, step: int) -> Path:
        return self.directory / f"step_{step}"

    def _scan(self) -> tuple[list[int], list[Path]]:
        """Committed steps (sorted) and the directory entries that are not checkpoints."""
        steps, junk = [], []
        for entry in os.scandir(self.directory):
            match = _STEP_DIR.match(entry.name)
            if match and entry.is_dir(follow_symlinks=False):
                step = int(match.group(1))
                if io.read_commit(Path(entry.path), step) is not None:
                    steps.append(step)
                else:
                    junk.append(Path(entry.path))
            elif entry.name.startswith((_TMP_PREFIX, _TRASH_PREFIX)):
                junk.append(Path(entry.path))
        return sorted(steps), junk

    def all_steps(self) -> list[int]:
        """Every committed step, oldest first."""
        return self._scan()[0]

    def latest_step(self) -> int | None:
        """The newest committed step, or None when there is none."""
        steps = self.all_steps()
        return steps[-1] if steps else None

    def _clean_up(self) -> None:
        """Remove temporary directories and step directories without a valid COMMIT."""
        for path in self._scan()[1]:
            shutil.rmtree(path, ignore_errors=True)

    # -- saving ----------------------------------------------------------------
    def save(self, step: int, state: Any, *, metadata: Mapping[str, Any] | None = None) -> None:
        """Write ``state`` as checkpoint ``step`` (atomically; in the background if asked).

        ``metadata`` is a JSON-serializable mapping kept beside the state
        (``manager.metadata(step)`` reads it back).
        """
        self.wait()
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
            self._score(step, dict(metadata or {}))
        state_dict = _snapshot(state, copy=self.background)
        segments = Segments()
        skeleton = encode(state_dict, segments)
        if not self.background:
            self._write(step, segments, skeleton, meta_bytes)
            return
        self._thread = threading.Thread(
            target=self._write_in_background,
            args=(step, segments, skeleton, meta_bytes),
            name=f"ramie-checkpoint-{step}",
            daemon=False,
        )
        self._thread.start()

    def _write_in_background(self, step: int, *args: Any) -> None:
        try:
            self._write(step, *args)
        except BaseException as e:  # re-raised by wait()
            self._error = (step, e)

    def _write(self, step: int, segments: Segments, skeleton: Any, meta_bytes: bytes) -> None:
        tmp = self.directory / f"{_TMP_PREFIX}step_{step}-{uuid.uuid4().hex[:12]}"
        tmp.mkdir()
        try:
            files = {
                io.STATE_FILE: io.write_parts(tmp / io.STATE_FILE, segments.parts),
                io.INDEX_FILE: io.write_index(tmp / io.INDEX_FILE, skeleton, segments.leaves),
                io.METADATA_FILE: io.write_small(tmp / io.METADATA_FILE, meta_bytes),
            }
            commit = {"format": io.FORMAT, "version": io.VERSION, "step": step, "files": files}
            io.write_small(tmp / io.COMMIT_FILE, json.dumps(commit, indent=1).encode())
            io.fsync_dir(tmp)
            final = self._step_dir(step)
            if final.exists():
                raise _errors.CheckpointError(
                    _errors.STEP_EXISTS.format(step=step, directory=self.directory)
                )
            os.rename(tmp, final)
            io.fsync_dir(self.directory)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        self._prune()

    def wait(self) -> None:
        """Block until a background save has finished; raise its error if it failed."""
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        if self._error is not None:
            step, error = self._error
            self._error = None
            raise _errors.CheckpointError(
                _errors.BACKGROUND_FAILED.format(
                    step=step, detail=f"{type(error).__name__}: {error}"
                )
            ) from error

    # -- keeping ---------------------------------------------------------------
    def _score(self, step: int, metadata: Mapping[str, Any]) -> float:
        if callable(self.keep_best):
            value = self.keep_best(metadata)
        elif self.keep_best in metadata:
            value = metadata[self.keep_best]
        else:
            raise _errors.CheckpointError(
                _errors.MISSING_BEST_METRIC.format(
                    metric=self.keep_best, step=step, metadata=dict(metadata)
                )
            )
        value = float(value)
        return value if self.best_mode == "max" else -value

    def _prune(self) -> None:
        steps = self.all_steps()
        if self.max_to_keep is None or len(steps) <= self.max_to_keep:
            return
        if self.keep_best is None:
            keep = set(steps[-self.max_to_keep :])
        else:
            scores = {s: self._score(s, self._metadata(s)) for s in steps}
            best = sorted(steps, key=lambda s: (scores[s], s), reverse=True)
            keep = set(best[: self.max_to_keep]) | {steps[-1]}
        for step in steps:
            if step not in keep:
                trash = self.directory / f"{_TRASH_PREFIX}step_{step}-{uuid.uuid4().hex[:12]}"
                os.rename(self._step_dir(step), trash)
                io.fsync_dir(self.directory)
                shutil.rmtree(trash, ignore_errors=True)

    # -- restoring -------------------------------------------------------------
    def _commit(self, step: int | None) -> tuple[int, Path, dict]:
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
        step_dir = self._step_dir(chosen)
        commit = io.read_commit(step_dir, chosen)
        if commit is None:  # removed or damaged since the scan
            raise _errors.CheckpointError(
                _errors.NO_CHECKPOINT.format(
                    directory=self.directory, which=f" for step {chosen}", steps=steps
                )
            )
        return chosen, step_dir, commit

    def metadata(self, step: int | None = None) -> dict[str, Any]:
        """The metadata saved with ``step`` (the latest when None)."""
        self.wait()
        return self._metadata(step)

    def _metadata(self, step: int | None) -> dict[str, Any]:
        _, step_dir, commit = self._commit(step)
        if io.METADATA_FILE not in commit["files"]:
            return {}
        data = io.read_small(step_dir, io.METADATA_FILE, commit, verify=True)
        try:
            return json.loads(data)
        except ValueError as e:
            raise io._corrupt(step_dir, io.METADATA_FILE, commit, str(e)) from None

    def restore(
        self,
        step: int | None = None,
        target: Any = None,
        *,
        strict: bool = True,
        verify: bool = True,
    ) -> Any:
        """Read checkpoint ``step`` (the latest when None), into ``target`` when given.

        ``target`` may be a State or pure dict of real arrays, or an abstract one
        (``jax.eval_shape``, ``jax.ShapeDtypeStruct`` leaves): nothing is
        materialised besides the restored arrays, which land on the target
        leaves' shardings. Keys, shapes and dtypes are checked before any array
        is read (see ``from_state_dict`` for ``strict``). Without a target, the
        nested dict of numpy arrays is returned. ``verify`` checks every file's
        CRC-32 against the ``COMMIT`` record.
        """
        self.wait()
        chosen, step_dir, commit = self._commit(step)
        index = io.read_small(step_dir, io.INDEX_FILE, commit, verify)
        size = commit["files"][io.STATE_FILE]["size"]
        try:
            skeleton, leaves = io.parse_index(index, size)
        except ValueError as e:
            raise io._corrupt(step_dir, io.INDEX_FILE, commit, str(e)) from None
        bad: set[str] = set()
        if target is not None:
            pending = io.fill(skeleton, lambda n: io.Pending(leaves[n][1], leaves[n][2]))
            bad = check(target, pending, strict=strict, what=f"restore(step={chosen})")
            skeleton, leaves = io.parse_index(index, size)
        crc = commit["files"][io.STATE_FILE]["crc32"] if verify else None
        try:
            arrays = io.read_leaves(step_dir / io.STATE_FILE, leaves, size, crc)
        except (OSError, ValueError, EOFError) as e:
            raise io._corrupt(step_dir, io.STATE_FILE, commit, str(e)) from None
        data = io.fill(skeleton, arrays.__getitem__)
        if target is None:
            return data
        return apply(target, data, bad, convert)
