"""Network configurations of the seed (Tables I and II), Keras constructors and a NumPy forward pass.

Autoencoders (Table I; ReLU hidden layers, linear code and output, MSE, Adam):
    NN1 500-128-64-32-2-32-64-128-500, NN2 500-128-64-32-64-128-500 (the seed's pick),
    NN3 500-128-64-128-500, NN4 500-128-500.

Feed-forward classifier (Table II) on the encoder output, the seed's five layers: L1 the input
layer, hidden L2-L4 of 100, 60 and 30 units, L5 the softmax output; cross-entropy, Adam, batch 16.
Table II gives activations for "Layer 1-4", i.e. L1-L4: L1 is a dense layer as wide as the code
with the first activation, L2-L4 take the other three, dropout follows each hidden layer, and the
output logits are linear into the softmax. (Putting the fourth activation on the 12 output units
instead saturates a sigmoid before the softmax: every confident prediction then gets the same
probability, e.g. 0.875, which no calibration can repair.) Probabilities are
temperature-calibrated afterwards (:mod:`pymatgen_xanes_nn.training.fit`).

The seed's "dropout ratio 0.8" is a *keep* probability ("we drop 20% neuron"): Keras
``Dropout(rate=1 - keep_prob)``.

Keras is imported only inside the constructors and :func:`train_*`; prediction uses
:func:`forward`, plain NumPy.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

import numpy as np

from pymatgen_xanes_nn.errors import InputError

if TYPE_CHECKING:
    from collections.abc import Sequence

AE_CONFIGS: dict[str, tuple[int, ...]] = {
    "NN1": (128, 64, 32, 2),
    "NN2": (128, 64, 32),
    "NN3": (128, 64),
    "NN4": (128,),
}
FNN_HIDDEN: tuple[int, ...] = (100, 60, 30)
FNN_CONFIGS: dict[str, tuple[str, str, str, str]] = {
    "FNN1": ("relu", "relu", "relu", "relu"),
    "FNN2": ("sigmoid", "sigmoid", "sigmoid", "sigmoid"),
    "FNN3": ("sigmoid", "sigmoid", "relu", "relu"),
    "FNN4": ("relu", "relu", "sigmoid", "sigmoid"),
}
DEFAULT_AE = "NN2"
DEFAULT_FNN = "FNN4"
DEFAULT_KEEP_PROB = 0.8
#: Run a whole epoch of these tiny networks inside one compiled call: Python overhead dominates otherwise.
STEPS_PER_EXECUTION = 100_000

ACTIVATIONS = {
    "linear": lambda x: x,
    "relu": lambda x: np.maximum(x, 0.0),
    "sigmoid": lambda x: 0.5 * (1.0 + np.tanh(0.5 * x)),  # overflow-free logistic
    "softmax": lambda x: softmax(x, axis=-1),
}


def logsumexp(x: np.ndarray, axis: int = -1) -> np.ndarray:
    """``log(sum(exp(x)))`` along ``axis``, stable.

    Plain NumPy on purpose: scipy.special's array-API dispatch costs ~0.2 ms a call, more than a network's forward
    pass, and an ensemble's classify() makes a dozen such calls.
    """
    x = np.asarray(x, float)
    m = np.max(x, axis=axis, keepdims=True)
    m = np.where(np.isfinite(m), m, 0.0)
    with np.errstate(divide="ignore"):  # all -inf: log(0) = -inf, as scipy gives
        return np.squeeze(m, axis=axis) + np.log(np.sum(np.exp(x - m), axis=axis))


def softmax(x: np.ndarray, axis: int = -1) -> np.ndarray:
    """``exp(x) / sum(exp(x))`` along ``axis``, stable (plain NumPy, as :func:`logsumexp`)."""
    x = np.asarray(x, float)
    e = np.exp(x - np.max(x, axis=axis, keepdims=True))
    return e / np.sum(e, axis=axis, keepdims=True)


def check_config(name: str, configs: dict) -> str:
    """Return ``name`` or raise ``ValueError`` naming the allowed configurations."""
    if name not in configs:
        raise InputError(f"Unknown configuration {name!r}; choose one of {sorted(configs)}")
    return name


def check_keep_prob(keep_prob: float) -> float:
    """Validate a dropout keep probability in (0, 1]."""
    if not 0.0 < keep_prob <= 1.0:
        raise InputError(f"Dropout keep probability must be in (0, 1], got {keep_prob}")
    return float(keep_prob)


def _keras():
    # TensorFlow's C++ start-up chatter (including harmless "errors" about op attributes) is noise here
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import keras

    return keras


def set_seed(seed: int) -> None:
    """Seed Python, NumPy and TensorFlow, and make TensorFlow ops deterministic."""
    keras = _keras()
    keras.backend.clear_session()  # models accumulate in the global graph state otherwise, slowing every fit
    keras.utils.set_random_seed(seed)
    try:
        import tensorflow as tf

        tf.config.experimental.enable_op_determinism()
    except Exception:  # other backends
        pass


def build_autoencoder(config: str = DEFAULT_AE, n_inputs: int = 500, learning_rate: float = 1e-3):
    """Build and compile the Table I autoencoder.

    Returns:
        ``(autoencoder, encoder)`` Keras models sharing weights.
    """
    keras = _keras()
    sizes = AE_CONFIGS[check_config(config, AE_CONFIGS)]
    inp = keras.Input((n_inputs,), name="spectrum")
    x = inp
    for i, units in enumerate(sizes):
        last = i == len(sizes) - 1
        x = keras.layers.Dense(units, activation="linear" if last else "relu", name=f"enc{i}")(x)
    code = x
    for i, units in enumerate(reversed(sizes[:-1])):
        x = keras.layers.Dense(units, activation="relu", name=f"dec{i}")(x)
    out = keras.layers.Dense(n_inputs, activation="linear", name="reconstruction")(x)
    autoencoder = keras.Model(inp, out, name=f"autoencoder_{config}")
    autoencoder.compile(
        optimizer=keras.optimizers.Adam(learning_rate), loss="mse", steps_per_execution=STEPS_PER_EXECUTION
    )
    return autoencoder, keras.Model(inp, code, name=f"encoder_{config}")


def build_fnn(
    config: str = DEFAULT_FNN,
    n_inputs: int = 32,
    n_classes: int = 12,
    keep_prob: float = DEFAULT_KEEP_PROB,
    learning_rate: float = 1e-3,
    hidden: Sequence[int] = FNN_HIDDEN,
):
    """Build and compile the Table II feed-forward classifier (softmax output, cross-entropy)."""
    keras = _keras()
    acts = FNN_CONFIGS[check_config(config, FNN_CONFIGS)]
    rate = 1.0 - check_keep_prob(keep_prob)
    inp = keras.Input((n_inputs,), name="code")
    x = keras.layers.Dense(n_inputs, activation=acts[0], name="fnn_input")(inp)  # L1
    for i, (units, act) in enumerate(zip(hidden, acts[1:])):  # L2-L4
        x = keras.layers.Dense(units, activation=act, name=f"fnn{i}")(x)
        if rate > 0:
            x = keras.layers.Dropout(rate, name=f"dropout{i}")(x)
    x = keras.layers.Dense(n_classes, activation="linear", name="logits")(x)  # L5
    out = keras.layers.Softmax(name="softmax")(x)
    model = keras.Model(inp, out, name=f"fnn_{config}")
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
        steps_per_execution=STEPS_PER_EXECUTION,
    )
    return model


def export_dense_layers(model) -> list[dict[str, Any]]:
    """Export a Keras model's Dense layers (and a final Softmax) as NumPy layer dicts."""
    layers = []
    for layer in model.layers:
        kind = type(layer).__name__
        if kind == "Dense":
            w, b = layer.get_weights()
            act = layer.get_config()["activation"]
            layers.append({"W": np.asarray(w, np.float32), "b": np.asarray(b, np.float32), "activation": act})
        elif kind == "Softmax":
            layers.append({"activation": "softmax"})
    return layers


def forward(layers: Sequence[dict[str, Any]], x: np.ndarray) -> np.ndarray:
    """NumPy forward pass through exported layers (dropout is the identity at inference)."""
    out = np.asarray(x, dtype=np.float32)
    for layer in layers:
        if "W" in layer:
            out = out @ layer["W"] + layer["b"]
        out = ACTIVATIONS[layer["activation"]](out)
    return out


def _dataset(arrays: tuple, batch_size: int, seed: int):
    """A shuffled, batched, cached tf.data pipeline (reshuffled every epoch, seeded)."""
    import tensorflow as tf

    n = len(arrays[0])
    return (
        tf.data.Dataset.from_tensor_slices(arrays)
        .cache()
        .shuffle(n, seed=seed, reshuffle_each_iteration=True)
        .batch(batch_size)
        .prefetch(2)
    )


def fit_autoencoder(
    x: np.ndarray,
    config: str = DEFAULT_AE,
    epochs: int = 200,
    batch_size: int = 32,
    learning_rate: float = 1e-3,
    seed: int = 0,
    x_val: np.ndarray | None = None,
    verbose: int = 0,
) -> tuple[list[dict], list[dict], dict[str, list[float]]]:
    """Train an autoencoder and return ``(encoder_layers, decoder_layers, history)``."""
    set_seed(seed)
    autoencoder, encoder = build_autoencoder(config, x.shape[1], learning_rate)
    x = np.asarray(x, np.float32)
    hist = autoencoder.fit(
        _dataset((x, x), batch_size, seed), epochs=epochs, verbose=verbose, shuffle=False,  # shuffled by tf.data
        validation_data=(x_val, x_val) if x_val is not None else None,
    )
    enc = export_dense_layers(encoder)
    all_layers = export_dense_layers(autoencoder)
    return enc, all_layers[len(enc):], {k: [float(v) for v in vals] for k, vals in hist.history.items()}


def fit_fnn(
    z: np.ndarray,
    y: np.ndarray,
    n_classes: int,
    config: str = DEFAULT_FNN,
    keep_prob: float = DEFAULT_KEEP_PROB,
    epochs: int = 500,
    batch_size: int = 16,
    learning_rate: float = 1e-3,
    seed: int = 0,
    z_val: np.ndarray | None = None,
    y_val: np.ndarray | None = None,
    class_weight: dict[int, float] | None = None,
    verbose: int = 0,
) -> tuple[list[dict], dict[str, list[float]]]:
    """Train the classifier on encoded spectra; return ``(layers, history)``."""
    set_seed(seed)
    model = build_fnn(config, z.shape[1], n_classes, keep_prob, learning_rate)
    y = np.asarray(y, np.int32)
    w = np.ones(len(y), np.float32) if class_weight is None else np.array([class_weight[k] for k in y], np.float32)
    hist = model.fit(
        _dataset((np.asarray(z, np.float32), y, w), batch_size, seed), epochs=epochs, verbose=verbose,
        shuffle=False,  # shuffled by tf.data
        validation_data=(z_val, y_val) if z_val is not None else None,
    )
    return export_dense_layers(model), {k: [float(v) for v in vals] for k, vals in hist.history.items()}
