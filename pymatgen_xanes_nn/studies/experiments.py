"""The seed paper's experiments, reproduced on our data: Table I, Fig. 7, dropout sweep, Table II.

Each experiment runs over several seeds and both split protocols (``grouped`` by material family,
and the seed's ``random`` split by spectrum), writes ``<name>.json`` (every number plotted) and
``<name>.png`` (mean and spread), and is one command: ``xanes-nn experiment NAME``.

    autoencoders  NN1-NN4 (Table I): training cost per epoch (Fig. 6)
    latent        NN1's 2-D code coloured by class (Fig. 7), and NN2's code projected by PCA
    dropout       FNN keep probability 0.4, 0.6, 0.8, 1.0: test accuracy per epoch (Fig. 8)
    activations   FNN1-FNN4 (Table II) at keep 0.8: test accuracy per epoch (Fig. 9)
"""

from __future__ import annotations

import json
import os
from typing import TYPE_CHECKING, Any

import numpy as np

from pymatgen_xanes_nn.errors import InputError
from pymatgen_xanes_nn.models import AE_CONFIGS, DEFAULT_AE, FNN_CONFIGS

if TYPE_CHECKING:
    from pymatgen_xanes_nn.training.fit import SpectraSet

EXPERIMENTS = ("autoencoders", "latent", "dropout", "activations")
PROTOCOLS = ("grouped", "random")
KEEP_PROBS = (0.4, 0.6, 0.8, 1.0)
#: The seed's settings, and the --quick ones used by the tests.
FULL = {"ae_epochs": 200, "fnn_epochs": 500, "seeds": (0, 1, 2)}
QUICK = {"ae_epochs": 3, "fnn_epochs": 3, "seeds": (0, 1, 2)}


def split(spectra: SpectraSet, protocol: str, seed: int, test_fraction: float = 0.2) -> tuple[np.ndarray, np.ndarray]:
    """Train/test indices: by material group (``grouped``) or by spectrum (``random``, the seed's)."""
    from pymatgen_xanes_nn.training.fit import grouped_holdout

    if protocol == "grouped":
        return grouped_holdout(spectra.groups, spectra.labels, test_fraction, seed)
    if protocol != "random":
        raise InputError(f"Unknown protocol {protocol!r}; choose one of {PROTOCOLS}")
    rng = np.random.default_rng(seed)
    idx = rng.permutation(len(spectra.labels))
    n_test = int(round(test_fraction * len(idx)))
    return np.sort(idx[n_test:]), np.sort(idx[:n_test])


def _fnn_curves(spectra: SpectraSet, classes: list[str], protocol: str, seed: int, fnn_config: str,
                keep_prob: float, ae_epochs: int, fnn_epochs: int) -> dict[str, list[float]]:
    """Training and held-out accuracy per epoch, trained by the shipped recipe (:func:`training.fit_networks`)."""
    from pymatgen_xanes_nn.training.fit import TrainingConfig, fit_networks

    tr, te = split(spectra, protocol, seed)
    y = np.array([classes.index(lab) for lab in spectra.labels])
    config = TrainingConfig(ae_config=DEFAULT_AE, fnn_config=fnn_config, keep_prob=keep_prob, ae_epochs=ae_epochs,
                            fnn_epochs=fnn_epochs, seed=seed)
    hist = fit_networks(spectra.x[tr], y[tr], len(classes), config, validation=(spectra.x[te], y[te]))["history"]
    return {"train_accuracy": hist["fnn_accuracy"], "test_accuracy": hist["fnn_val_accuracy"]}


def _runs(settings: dict[str, Any], variants: list, desc: str):
    from tqdm import tqdm

    jobs = [(v, p, s) for v in variants for p in PROTOCOLS for s in settings["seeds"]]
    return tqdm(jobs, desc=desc, unit="run")


def run_autoencoders(spectra: SpectraSet, settings: dict[str, Any]) -> dict[str, Any]:
    """Table I / Fig. 6: reconstruction MSE per epoch on training and held-out spectra."""
    from pymatgen_xanes_nn.models import fit_autoencoder

    curves: dict[str, dict[str, list]] = {}
    for config, protocol, seed in _runs(settings, list(AE_CONFIGS), "autoencoders"):
        tr, te = split(spectra, protocol, seed)
        _, _, hist = fit_autoencoder(spectra.x[tr], config, epochs=settings["ae_epochs"], seed=seed,
                                     x_val=spectra.x[te])
        c = curves.setdefault(f"{config}|{protocol}", {"loss": [], "val_loss": []})
        c["loss"].append(hist["loss"])
        c["val_loss"].append(hist["val_loss"])
    return {"curves": curves, "final": {k: {m: _mean_std([r[-1] for r in v[m]]) for m in v} for k, v in curves.items()}}


def run_latent(spectra: SpectraSet, settings: dict[str, Any], classes: list[str]) -> dict[str, Any]:
    """Fig. 7: the NN1 encoder's 2-D code of every spectrum, and NN2's code projected by PCA.

    The scatter is drawn for the first seed; the separability (1-NN accuracy across materials in
    the 2-D plane) is reported over all seeds.
    """
    from pymatgen_xanes_nn.models import fit_autoencoder, forward

    runs = []
    for seed in settings["seeds"]:
        enc1, _, _ = fit_autoencoder(spectra.x, "NN1", epochs=settings["ae_epochs"], seed=seed)
        enc2, _, _ = fit_autoencoder(spectra.x, "NN2", epochs=settings["ae_epochs"], seed=seed)
        z1, z2 = forward(enc1, spectra.x), forward(enc2, spectra.x)
        z2c = z2 - z2.mean(axis=0)
        _, s, vt = np.linalg.svd(z2c, full_matrices=False)
        runs.append((z1, z2c @ vt[:2].T, s))
    z1, pca, s = runs[0]
    return {
        "labels": list(spectra.labels), "classes": classes, "task_ids": list(spectra.task_ids),
        "nn1_code": z1.tolist(), "nn2_pca": pca.tolist(),
        "nn2_pca_explained": (s[:2] ** 2 / np.sum(s**2)).tolist(),
        "separability": {"nn1_code": _mean_std([_knn_accuracy(r[0], spectra) for r in runs]),
                         "nn2_pca": _mean_std([_knn_accuracy(r[1], spectra) for r in runs])},
    }


def _knn_accuracy(z: np.ndarray, spectra: SpectraSet) -> float:
    """Grouped leave-one-group-out 1-NN accuracy in a 2-D code: how separable the scatter is."""
    z = np.asarray(z, float)
    labels, groups = np.asarray(spectra.labels), np.asarray(spectra.groups)
    d = ((z[:, None, :] - z[None, :, :]) ** 2).sum(-1)
    d[groups[:, None] == groups[None, :]] = np.inf
    return float(np.mean(labels[d.argmin(axis=1)] == labels))


def run_dropout(spectra: SpectraSet, settings: dict[str, Any], classes: list[str]) -> dict[str, Any]:
    """Fig. 8: test accuracy per epoch for keep probabilities 0.4-1.0 (FNN1, as in the seed)."""
    return _accuracy_sweep(spectra, settings, classes, list(KEEP_PROBS), "dropout",
                           lambda v: {"fnn_config": "FNN1", "keep_prob": v})


def run_activations(spectra: SpectraSet, settings: dict[str, Any], classes: list[str]) -> dict[str, Any]:
    """Fig. 9: test accuracy per epoch for FNN1-FNN4 at keep probability 0.8."""
    return _accuracy_sweep(spectra, settings, classes, list(FNN_CONFIGS), "activations",
                           lambda v: {"fnn_config": v, "keep_prob": 0.8})


def _accuracy_sweep(spectra, settings, classes, variants, desc, kwargs_of) -> dict[str, Any]:
    curves: dict[str, dict[str, list]] = {}
    for variant, protocol, seed in _runs(settings, variants, desc):
        res = _fnn_curves(spectra, classes, protocol, seed, ae_epochs=settings["ae_epochs"],
                          fnn_epochs=settings["fnn_epochs"], **kwargs_of(variant))
        c = curves.setdefault(f"{variant}|{protocol}", {"train_accuracy": [], "test_accuracy": []})
        for k in c:
            c[k].append(res[k])
    final = {k: {"test_accuracy": _mean_std([r[-1] for r in v["test_accuracy"]]),
                 "best_test_accuracy": _mean_std([max(r) for r in v["test_accuracy"]])} for k, v in curves.items()}
    return {"curves": curves, "final": final}


def _mean_std(values) -> dict[str, float]:
    return {"mean": float(np.mean(values)), "std": float(np.std(values)), "n": len(values)}


def plot(name: str, result: dict[str, Any], filename: str) -> None:
    """Draw an experiment's figure (mean line, min-max band over seeds; both protocols)."""
    from pymatgen_xanes_nn.plotting import pyplot

    plt = pyplot()
    if name == "latent":
        fig, axes = plt.subplots(1, 2, figsize=(12, 5))
        labels = np.asarray(result["labels"])
        for ax, key, title in ((axes[0], "nn1_code", "NN1 encoder, 2-D code (Fig. 7)"),
                               (axes[1], "nn2_pca", "NN2 code, PCA to 2-D")):
            z = np.asarray(result[key])
            for i, cls in enumerate(result["classes"]):
                m = labels == cls
                ax.scatter(z[m, 0], z[m, 1], s=9, label=cls, color=plt.cm.tab20(i % 20))
            sep = result["separability"][key]
            ax.set_title(f"{title}\n1-NN accuracy across materials {sep['mean']:.2f} +- {sep['std']:.2f}", fontsize=10)
        axes[1].legend(fontsize=7, markerscale=2, loc="best")
    else:
        metric = "loss" if name == "autoencoders" else "test_accuracy"
        fig, axes = plt.subplots(1, 2, figsize=(12, 4.5), sharey=True)
        variants = sorted({key.split("|")[0] for key in result["curves"]})
        for ax, protocol in zip(axes, PROTOCOLS):
            for key, curves in sorted(result["curves"].items()):
                variant, proto = key.split("|")
                if proto != protocol:
                    continue
                i = variants.index(variant)  # one colour per variant in both panels
                runs = np.asarray(curves[metric])
                epochs = np.arange(1, runs.shape[1] + 1)
                label = f"keep {variant}" if name == "dropout" else variant
                ax.plot(epochs, runs.mean(axis=0), label=label, color=f"C{i % 10}")
                ax.fill_between(epochs, runs.min(axis=0), runs.max(axis=0), alpha=0.2, color=f"C{i % 10}")
            split_name = "grouped by material" if protocol == "grouped" else "random by spectrum (seed's)"
            ax.set(xlabel="epoch", title=f"{name}: {split_name}",
                   ylabel="training MSE" if name == "autoencoders" else "test accuracy")
            if name == "autoencoders":
                ax.set_yscale("log")
            ax.legend()
    fig.tight_layout()
    fig.savefig(filename, dpi=110)
    plt.close(fig)


def run_experiment(name: str, output_dir: str, quick: bool = False, docs: list[dict] | None = None,
                   scheme: str = "chemsys") -> dict[str, Any]:
    """Run one experiment on the shipped dataset (or ``docs``) and write its JSON and PNG."""
    from pymatgen_xanes_nn.training.fit import dataset_for_scheme

    if name not in EXPERIMENTS:
        raise InputError(f"Unknown experiment {name!r}; choose one of {EXPERIMENTS}")
    settings = dict(QUICK if quick else FULL)
    spectra, classes = dataset_for_scheme(scheme, docs)
    spectra = spectra.labelled()
    if name == "autoencoders":
        result = run_autoencoders(spectra, settings)
    elif name == "latent":
        result = run_latent(spectra, settings, classes)
    elif name == "dropout":
        result = run_dropout(spectra, settings, classes)
    else:
        result = run_activations(spectra, settings, classes)
    result.update({"experiment": name, "quick": quick, "scheme": scheme, "n_spectra": len(spectra.x),
                   "n_groups": len(set(spectra.groups)), "classes": classes,
                   "settings": {k: list(v) if isinstance(v, tuple) else v for k, v in settings.items()}})
    os.makedirs(output_dir, exist_ok=True)
    with open(os.path.join(output_dir, f"{name}.json"), "w") as f:
        json.dump(result, f)
    plot(name, result, os.path.join(output_dir, f"{name}.png"))
    return result
