"""Fill a training request's defaults, from the recipe or from its checkpoint.

A new run takes what the request leaves out (``None``) from its
architecture's recipe. A resumed run takes its architecture and recipe from
the checkpoint's sidecar (:func:`napari_digits.engine.checkpoints.read_state`):
a value the request gives that contradicts the sidecar is an error, never a
silent switch of recipe halfway through a training.

Runs in the engine process or a command-line process (with the engine).
"""

from __future__ import annotations

import dataclasses

from napari_digits.engine.checkpoints import ModelFileError, state_path
from napari_digits.engine.protocol import ARCHITECTURES, ConfigError, TrainConfig

#: what a resumed run must share with its checkpoint (the recipe and its data)
RECIPE_FIELDS = (
    "architecture",
    "batch_size",
    "learning_rate",
    "seed",
    "mixed_precision",
    "augment",
    "continental",
    "scan_statistics",
    "init",
    "train_limit",
)
#: what a resumed run takes from its checkpoint unless the request says
KEPT_FIELDS = ("epochs", "test_limit")


def new_run(config: TrainConfig) -> TrainConfig:
    """Return ``config`` with every recipe value filled in.

    Parameters
    ----------
    config : TrainConfig
        The request; ``None`` means the architecture's default.

    Returns
    -------
    TrainConfig
        Architecture, epochs, batch size, learning rate and seed all set.
    """
    architecture = config.architecture or "default"
    recipe = ARCHITECTURES[architecture]
    return dataclasses.replace(
        config,
        architecture=architecture,
        epochs=config.epochs or recipe.epochs,
        batch_size=config.batch_size or recipe.batch_size,
        learning_rate=config.learning_rate or recipe.learning_rate,
        seed=0 if config.seed is None else config.seed,
    )


def resumed_run(config: TrainConfig, state: dict) -> TrainConfig:
    """Return the config of a run resuming the checkpoint ``state`` describes.

    Parameters
    ----------
    config : TrainConfig
        The request (``resume`` set); values it leaves out come from the
        checkpoint.
    state : dict
        The checkpoint's sidecar, as :func:`~napari_digits.engine.
        checkpoints.read_state` returns it.

    Returns
    -------
    TrainConfig
        The checkpoint's recipe with the request's run-time options (device,
        MNIST, time budget) and target epochs.

    Raises
    ------
    ConfigError
        When the request contradicts the checkpoint's recipe, or asks for no
        more epochs than the checkpoint has done.
    ModelFileError
        When the sidecar holds values no training could have written.
    """
    saved = _saved_config(config.out, state)
    for name in RECIPE_FIELDS:
        given, recorded = getattr(config, name), getattr(saved, name)
        if given not in (None, False) and given != recorded:
            raise ConfigError(
                f"cannot resume {config.out} with {_flag(name)} {given}: its "
                f"checkpoint was trained with {recorded} (see "
                f"{state_path(config.out).name}); leave the option out"
            )
    kept = {name: getattr(config, name) or getattr(saved, name) for name in KEPT_FIELDS}
    resolved = dataclasses.replace(
        saved,
        **kept,
        out=config.out,
        device=config.device,
        mnist=config.mnist,
        time_budget=config.time_budget,
        download=config.download,
        resume=True,
    )
    if resolved.epochs <= state["epochs_done"]:
        raise ConfigError(
            f"{config.out} has already done {state['epochs_done']} of "
            f"{resolved.epochs} epoch(s): ask for more epochs to resume it"
        )
    return resolved


def _saved_config(out: str, state: dict) -> TrainConfig:
    """Return the sidecar's recipe as a complete TrainConfig (old ones too)."""
    path = state_path(out)
    recorded = dict(state["config"])
    recorded["architecture"] = state["architecture"]
    if state.get("epochs") is not None:
        recorded.setdefault("epochs", state["epochs"])
        recorded["epochs"] = recorded["epochs"] or state["epochs"]
    fields = {f.name for f in dataclasses.fields(TrainConfig)}
    known = {k: v for k, v in recorded.items() if k in fields}
    known.update(out=str(out), resume=False, download=False)
    try:
        return new_run(TrainConfig(**known))
    except (ConfigError, TypeError) as exc:
        raise ModelFileError(
            f"cannot resume: the training state {path} is damaged ({exc}); "
            "start a new training (without resume) or restore the file"
        ) from None


def _flag(name: str) -> str:
    """Return the command-line flag of a config field (``--learning-rate``)."""
    return "--model" if name == "architecture" else "--" + name.replace("_", "-")
