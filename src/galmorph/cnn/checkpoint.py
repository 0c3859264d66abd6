"""Per-epoch training checkpoints, so that a killed training resumes where it stopped.

After every epoch the folder receives the model's weights with the optimizer
state (``epoch_NNNN.weights.h5``), the early-stopping best weights
(``epoch_NNNN.best.npz``) and, written last, ``state.json``: the epoch, the
history so far, the callbacks' counters and a key of the settings and data.
Each file is written atomically and ``state.json`` names the files of its
epoch, so a kill at any moment leaves the previous complete checkpoint.

A checkpoint is used only when its key matches: a changed setting or other
training rows start a fresh run instead of resuming a stale one. The data
order of epoch ``e`` depends on ``(seed, e)`` only
(:func:`galmorph.cnn.data.epoch_order`) and the dropout generators' state is
saved, so a resumed run repeats the uninterrupted one.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Mapping
from pathlib import Path

import keras
import numpy as np

from galmorph.io import atomic_path

log = logging.getLogger(__name__)

STATE = "state.json"
#: Counters of the callbacks that a resumed run must continue, not reset.
CALLBACK_FIELDS = {
    "EarlyStopping": ("wait", "best", "best_epoch", "stopped_epoch"),
    "ReduceLROnPlateau": ("wait", "best", "cooldown_counter"),
}


def training_key(settings: Mapping, index) -> str:
    """A digest of the settings and of the exact training rows (files, ids, labels).

    The epoch count is left out: the first ``e`` epochs do not depend on how
    many follow, so raising ``cnn.epochs`` continues a checkpoint.
    """
    settings = {name: value for name, value in dict(settings).items() if name != "epochs"}
    digest = hashlib.sha256()
    digest.update(json.dumps(settings, sort_keys=True, default=str).encode())
    digest.update(json.dumps([Path(path).name for path in index.paths]).encode())
    for array in (index.asset_id, index.labels, index.groups, index.synthetic):
        digest.update(np.ascontiguousarray(array).tobytes())
    digest.update(keras.__version__.encode())
    return digest.hexdigest()


def _seed_states(model: keras.Model) -> list:
    """The dropout (and other) random generators' states, in layer order."""
    return [
        generator.state
        for layer in model._flatten_layers()  # noqa: SLF001 - the only way to reach them
        for generator in getattr(layer, "_seed_generators", [])
    ]


def _number(value):
    return float(value) if isinstance(value, np.generic | float | int) else value


class Checkpoint:
    """A checkpoint folder for one training run (``results/cnn/<variant>/checkpoint``).

    Parameters
    ----------
    folder : path
        Where the checkpoint lives; created on the first save.
    key : str
        :func:`training_key` of the run; a checkpoint with another key is ignored.
    """

    def __init__(self, folder: str | Path, key: str):
        self.folder = Path(folder)
        self.key = key
        #: True when the restored run had already stopped early: no epoch is left.
        self.stopped = False

    def _state(self) -> dict | None:
        path = self.folder / STATE
        if not path.is_file():
            return None
        try:
            state = json.loads(path.read_text())
        except (OSError, ValueError):
            log.warning("%s: unreadable, training starts from epoch 1", path)
            return None
        if state.get("key") != self.key:
            log.info("%s: written for other settings or data; training starts afresh", path)
            return None
        return state

    def restore(self, model: keras.Model, callbacks: list) -> tuple[int, dict]:
        """Load the last complete epoch into ``model``; return (epochs done, history so far).

        ``callbacks`` are the run's callbacks, whose counters are set again
        when training begins (see :meth:`callback`). Without a usable
        checkpoint, returns ``(0, {})`` and leaves the model as it is.
        """
        state = self._state()
        self._restored = None
        if state is None:
            return 0, {}
        # Build the optimizer's slots so that the saved moments have a place to go.
        model.optimizer.build(model.trainable_variables)
        model.load_weights(self.folder / state["weights"])
        for variable, value in zip(_seed_states(model), state["seed_states"], strict=True):
            variable.assign(np.asarray(value, dtype=variable.dtype))
        best = None
        if state.get("best_weights"):
            with np.load(self.folder / state["best_weights"]) as arrays:
                best = [arrays[f"w{i}"] for i in range(len(arrays.files))]
        self._restored = (state["callbacks"], best, callbacks)
        self.stopped = bool(state.get("stopped"))
        log.info("resuming from the checkpoint of epoch %d in %s", state["epoch"], self.folder)
        return state["epoch"], state["history"]

    def callback(self, history: dict) -> keras.callbacks.Callback:
        """The callback to put last: restores counters at start, saves after each epoch."""
        return _CheckpointCallback(self, history)

    def _apply_restored(self) -> None:
        restored = getattr(self, "_restored", None)
        if restored is None:
            return
        saved, best, callbacks = restored
        for callback in callbacks:
            for name, value in saved.get(type(callback).__name__, {}).items():
                setattr(callback, name, value)
            if isinstance(callback, keras.callbacks.EarlyStopping):
                callback.best_weights = best

    def save(self, model: keras.Model, epoch: int, history: dict, callbacks: list) -> None:
        """Write the state after ``epoch`` epochs (1-based) and drop the previous one."""
        self.folder.mkdir(parents=True, exist_ok=True)
        stem = f"epoch_{epoch:04d}"
        weights = f"{stem}.weights.h5"
        with atomic_path(self.folder / weights, suffix=".weights.h5") as temporary:
            model.save_weights(temporary)
        best_name = None
        counters = {}
        for callback in callbacks:
            fields = CALLBACK_FIELDS.get(type(callback).__name__)
            if fields:
                counters[type(callback).__name__] = {
                    name: _number(getattr(callback, name, None)) for name in fields
                }
            best = getattr(callback, "best_weights", None)
            if isinstance(callback, keras.callbacks.EarlyStopping) and best is not None:
                best_name = f"{stem}.best.npz"
                with atomic_path(self.folder / best_name, suffix=".npz") as temporary:
                    with open(temporary, "wb") as handle:
                        np.savez(handle, **{f"w{i}": np.asarray(w) for i, w in enumerate(best)})
        state = {
            "key": self.key,
            "epoch": epoch,
            "weights": weights,
            "best_weights": best_name,
            "seed_states": [np.asarray(s.value).tolist() for s in _seed_states(model)],
            "callbacks": counters,
            "stopped": bool(model.stop_training),
            "history": history,
        }
        with atomic_path(self.folder / STATE) as temporary:
            temporary.write_text(json.dumps(state) + "\n")
        keep = {STATE, weights, best_name}
        for path in self.folder.iterdir():
            if path.name not in keep and not path.name.startswith("."):
                path.unlink()


class _CheckpointCallback(keras.callbacks.Callback):
    def __init__(self, checkpoint: Checkpoint, history: dict):
        super().__init__()
        self.checkpoint = checkpoint
        self.history = {name: list(values) for name, values in history.items()}
        self.others: list = []

    def on_train_begin(self, logs=None):
        # Runs after the earlier callbacks reset their counters in their own on_train_begin.
        self.checkpoint._apply_restored()

    def on_epoch_end(self, epoch, logs=None):
        for name, value in (logs or {}).items():
            self.history.setdefault(name, []).append(float(value))
        self.checkpoint.save(self.model, epoch + 1, self.history, self.others)
