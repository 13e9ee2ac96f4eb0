"""The error type and the long messages of ramie.training's Optimizer and EMA.

Each message says where the problem is (Variable paths), what was expected,
what was found and how to fix it. Tests assert on these constants.
"""

from __future__ import annotations

from ramie.core import RamieError, format_path, format_paths


class TrainingError(RamieError, ValueError):
    """An Optimizer or EMA was given gradients, groups or a model that do not fit it."""


NOT_A_MODULE = (
    "{who}(model, ...): the model must be a ramie Module, got {type_name}. Pass the model "
    "object itself (the {who} keeps a reference to it and updates it in place)."
)

NOT_A_TRANSFORMATION = (
    "Optimizer(model, tx): tx must be an optax GradientTransformation (e.g. "
    "optax.adam(1e-3)) or a mapping {{filter: transformation}} for per-group optimizers; "
    "got {type_name}."
)

EMPTY_WRT = (
    "Optimizer(model, tx, wrt={wrt}): the filter matches no Variable of the {model} model, "
    "so there is nothing to optimize. Pass the kind of Variable the parameters are (the "
    "default is Param), or check that the model was built."
)

UNMATCHED_PARAMETERS = (
    "Optimizer: {count} parameter(s) are matched by none of the groups ({groups}):\n{paths}\n"
    "Every parameter needs exactly one optimizer. Add a group that matches them; to freeze "
    "them, give them optax.set_to_zero(), e.g. {{..., core.Everything: optax.set_to_zero()}} "
    "as the last group, or leave them out of wrt=."
)

BAD_GROUPS = (
    "Optimizer(model, groups): per-group optimizers are a mapping {{filter: transformation}} "
    "or a sequence of (filter, transformation) pairs; {problem}."
)

GRADS_NOT_A_STATE = (
    "Optimizer.update(grads): grads must be the model's gradients as a State (what "
    "ramie.transforms.grad/value_and_grad return for the model argument) or a nested dict "
    "of arrays with the same paths; got {type_name}. If you differentiated several "
    "arguments, pass the entry that belongs to the model."
)

GRADS_FROM_ANOTHER_MODEL = (
    "Optimizer.update(grads): none of the {found} gradient paths is a parameter of this "
    "optimizer's {model} model (wrt={wrt}). The gradients seem to come from another model: "
    "an optimizer updates only the model it was created with.\n"
    "parameters (first ones):\n{expected}\ngradients (first ones):\n{got}"
)

GRADS_OF_SUBMODULE = (
    "Optimizer.update(grads): the {found} gradient paths are those of the submodule "
    "{submodule!r} of this optimizer's {model} model (e.g. {example!r} is {full!r} in the "
    "model), so they look like the gradients of model.{attr} rather than of the model. "
    "Differentiate with respect to the whole model (grad(loss_fn)(model), calling "
    "model.{attr} inside loss_fn), or build the optimizer on the submodule: "
    "Optimizer(model.{attr}, tx)."
)

EMA_OTHER_MODEL = (
    "EMA.apply_to(model): the {found} model does not have the structure of the {expected} "
    "model this EMA averages.\n{details}\nPass the model the EMA was created with (or one "
    "built the same way)."
)

GRADS_MISMATCH = (
    "Optimizer.update(grads): the gradients do not match the parameters of the {model} "
    "model selected by wrt={wrt}.\n{details}\nDifferentiate with respect to the same "
    "Variables the optimizer updates (e.g. grad(loss_fn, wrt={wrt})), and pass the gradients "
    "of the model the optimizer was created with."
)

GRADS_SHAPES = (
    "Optimizer.update(grads): {count} gradient(s) have another shape than their parameter "
    "(path: parameter -> gradient):\n{paths}\nThe gradients seem to come from a model of "
    "another size than the one this optimizer updates."
)

WRONG_MODEL = (
    "Optimizer.update(model, grads): this optimizer was created for a {expected} model "
    "(id {expected_id}) but was given a {found} model (id {found_id}). An optimizer holds "
    "a reference to its model and updates only that one: create an Optimizer for the "
    "other model, or pass the same model object."
)

PARAMETERS_CHANGED = (
    "Optimizer.update(): the parameters of the {model} model changed since the optimizer "
    "was created, so its optax state no longer fits them.\n{details}\nCreate a new "
    "Optimizer after changing the model (model surgery), or keep the changed Variables out "
    "of wrt=."
)

UNSUPPORTED_STATE_NODE = (
    "Optimizer: the optax state holds a {type_name} at '{path}', a pytree node the "
    "Optimizer cannot keep as Variables (it keeps tuples, NamedTuples, lists, dicts and "
    "None). Please report the optax transformation you used."
)

BAD_DECAY = "EMA(model, decay={decay!r}): decay must be a number between 0 and 1."

EMA_STRUCTURE_CHANGED = (
    "EMA.update(): the {model} model's state no longer has the structure of the averaged "
    "copy.\n{details}\nCreate a new EMA after changing the model (model surgery)."
)


def describe_path_difference(expected, found) -> str:
    """List the paths only ``expected`` has (missing) and only ``found`` has (unexpected)."""
    found_set, expected_set = set(found), set(expected)
    missing = [format_path(p) for p in expected if p not in found_set]
    extra = [format_path(p) for p in found if p not in expected_set]
    lines = []
    if missing:
        lines.append(f"missing ({len(missing)}):\n{format_paths(missing)}")
    if extra:
        lines.append(f"unexpected ({len(extra)}):\n{format_paths(extra)}")
    return "\n".join(lines)
