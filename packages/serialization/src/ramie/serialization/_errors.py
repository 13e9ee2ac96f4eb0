"""Error types and the long messages ramie.serialization raises.

Every message says what is wrong, where (the path inside the tree or the file),
what was expected and what was found, and how to fix it. Messages are
module-level constants so tests can assert on them.
"""

from __future__ import annotations

from ramie.core import RamieError, format_paths


class SerializationError(RamieError, ValueError):
    """Base class of every error ramie.serialization raises on purpose."""


class MalformedDataError(SerializationError):
    """Bytes or a file are not valid serialized ramie/Flax data (truncated, hostile, corrupt)."""


class UnsupportedTypeError(SerializationError, TypeError):
    """A value in the tree has a type that cannot be serialized."""


class StateMismatchError(SerializationError):
    """The restored data and the target differ in keys, shapes or dtypes.

    ``differences`` holds one ``(path, target side, data side)`` triple per
    differing path.
    """

    def __init__(self, message: str, differences: list[tuple[str, str, str]]):
        super().__init__(message)
        self.differences = differences


class CheckpointError(SerializationError):
    """A checkpoint directory cannot be written or read as asked."""


class CheckpointCorruptError(CheckpointError, MalformedDataError):
    """A committed checkpoint's files do not match their recorded sizes or checksums."""


class RestoreMismatchWarning(UserWarning):
    """``strict=False`` restored only part of a tree; the message lists the rest."""


MAX_LISTED = 50


def format_path(path: tuple) -> str:
    """Render a key path as every ramie message shows it: ``'layers/0/kernel'``."""
    return "/".join(str(k) for k in path) if path else "<root>"


def format_differences(differences: list[tuple[str, str, str]]) -> str:
    """One line per difference: path, the target's side, the data's side."""
    return format_paths(
        [f"{path}: target has {want}; data has {found}" for path, want, found in differences],
        limit=MAX_LISTED,
    )


MISMATCH = (
    "{what}: the data does not fit the target at {count} path(s):\n{paths}\n"
    "Restore into a target of the same structure (e.g. the state of a model built with "
    "the same configuration, or jax.eval_shape of it), or pass strict=False to restore "
    "the paths that match and keep the target's values elsewhere."
)

PARTIAL_RESTORE = (
    "{what}: strict=False restored every matching path; {count} path(s) were not "
    "restored (the target's values were kept there, extra data was ignored):\n{paths}"
)

UNSUPPORTED_TYPE = (
    "Cannot serialize the value at '{path}': a {type_name} ({found}). Leaves must be "
    "arrays (numpy or jax), numpy scalars, bool, int, float, complex, str, bytes or None, "
    "inside dicts, lists, tuples, ramie States and Variables. Convert it, or register the "
    "type with register_serialization_state(type, to_state_dict, from_state_dict)."
)

MODULE_NOT_SERIALIZABLE = (
    "Cannot serialize the Module at '{path}' ({type_name}) directly: serialization works "
    "on State and pure dicts, never on objects. Serialize its state instead, "
    "e.g. to_bytes(core.state(model)), and restore with core.update(model, restored)."
)

ABSTRACT_NOT_SERIALIZABLE = (
    "Cannot serialize the value at '{path}': it is an abstract {type_name} with no data "
    "(shape {shape}, dtype {dtype}). Abstract values can be restore targets, not saved; "
    "save the state of a model that holds real arrays."
)

BAD_DTYPE_TO_WRITE = (
    "Cannot serialize the array at '{path}': its dtype {dtype} is not supported. "
    "Supported dtypes: {supported}. Cast it first (e.g. x.astype(np.float32))."
)

DUPLICATE_KEYS = (
    "Cannot serialize the mapping at '{path}': the keys {keys} become the same string "
    "key once converted with str(). Give the mapping keys that stay distinct as strings."
)

BAD_KEY = (
    "Cannot serialize the mapping at '{path}': key {key!r} is a {type_name}; keys must be "
    "str or int. Convert the keys to strings first."
)

TOO_DEEP = (
    "Cannot serialize the tree: it is nested more than {limit} levels deep at '{path}' "
    "(is there a reference cycle?). Serialize a tree without cycles."
)

MALFORMED = "Cannot read the data as ramie/Flax msgpack: {detail}."

CORRUPT_FILE = (
    "Checkpoint file {file} is corrupt: {detail}. The checkpoint at step {step} cannot be "
    "restored; nothing was deleted. manager.check() lists every step as good, corrupt or "
    "incomplete; restore the newest good one with manager.restore(step=...)."
)

STEP_VANISHED = (
    "The checkpoint at step {step} in {directory} was removed while it was being read "
    "(by the retention policy of a writer: max_to_keep / keep_best). Restore a step that "
    "is kept, e.g. manager.restore() for the latest."
)

READ_FAILED = (
    "Cannot read checkpoint file {file} (step {step}): {detail}. Check the file system "
    "(permissions, the disk); nothing was changed on disk."
)

SAVE_FAILED = (
    "Cannot save checkpoint step {step}: writing {path} failed ({detail}). The temporary "
    "directory was removed and the committed checkpoints are untouched; fix the cause "
    "(free space, permissions) and save again."
)

AFTER_COMMIT_FAILED = (
    "Checkpoint step {step} was committed, but the work after it failed at {path} "
    "({detail}): older steps may exceed max_to_keep until a later save succeeds. Fix the "
    "cause (permissions, the disk); step {step} itself is restorable."
)

SAVE_FAILED_KEPT = (
    "Cannot save checkpoint step {step}: writing {path} failed ({detail}), and removing "
    "its temporary directory {tmp} failed too ({cleanup}). The committed checkpoints are "
    "untouched; remove {tmp} by hand once the cause is fixed."
)

BAD_METRIC = (
    "keep_best={metric!r} needs a number for step {step}; got {value!r}. Pass a real "
    "number (NaN and infinities are accepted but never rank as best)."
)

BACKGROUND_UNREPORTED = (
    "ramie.serialization: the background save of step {step} into {directory} failed and "
    "nobody called manager.wait() or save() afterwards to see it: {detail}"
)

SAFETENSORS_MALFORMED = (
    "Cannot read {file}: it is not a valid safetensors file: {detail}. Write it again "
    "(save_safetensors / safetensors.numpy.save_file), or check the copy is complete."
)

FLAT_NAMES = (
    "Cannot read {source}: {detail}. Flat names nest at each '.', so a name cannot be "
    "both an array and a prefix of another; rename the arrays."
)

NOT_REGULAR = (
    "{file} is a {kind}, not a regular file; ramie reads checkpoints and safetensors "
    "only from regular files (or symlinks to them)."
)

NO_CHECKPOINT = (
    "No committed checkpoint in {directory}{which}. Committed steps: {steps}. Save one "
    "first with manager.save(step, state), or check the directory."
)

STEP_EXISTS = (
    "A checkpoint for step {step} already exists in {directory}. Steps must be new; "
    "save under another step number, or delete the old checkpoint first."
)

BAD_STEP = "Checkpoint steps are non-negative ints; got {found!r}."

BAD_METADATA = (
    "Checkpoint metadata must be JSON-serializable (dicts, lists, str, int, float, bool, "
    "None); json.dumps failed: {detail}."
)

MISSING_BEST_METRIC = (
    "keep_best={metric!r} needs the metric in the metadata of every save, but step "
    "{step} was saved with metadata {metadata!r}. Pass metadata={{{metric!r}: value}}."
)

BACKGROUND_FAILED = "The background save of step {step} failed: {detail}"

UNEXPECTED_FAILURE = (
    "{type_name}: {error}. The previous checkpoints are untouched; fix the cause and save again."
)

TARGET_IS_MODULE = (
    "The restore target at '{path}' is a Module ({type_name}); restore into its state "
    "instead: restored = from_bytes(core.state(model), data); core.update(model, restored). "
    "An abstract target works too: jax.eval_shape(lambda: core.state(Model(...)))."
)

FLAT_KEY_DOT = (
    "Cannot write '{path}' to safetensors: the key {key!r} contains a '.', which separates "
    "keys in flat safetensors names ('a.b.0.kernel'). Rename the attribute or dict key."
)

SAFETENSORS_DTYPE = (
    "Cannot write '{path}' to safetensors: dtype {dtype} is not one safetensors stores "
    "({supported})."
)

SAFETENSORS_LEAF = (
    "Cannot write '{path}' to safetensors: it is a {type_name}, and safetensors holds only "
    "arrays. Keep non-array values elsewhere (e.g. a JSON file) or convert them to arrays."
)
