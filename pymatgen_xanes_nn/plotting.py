"""Matplotlib figures (Agg backend: no screen needed)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np
    from pymatgen.analysis.xas.spectrum import XAS

    from pymatgen_xanes_nn.preprocessing import Preprocessing


def pyplot():
    """Import pyplot on the Agg backend."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_preprocessed(
    xas: XAS, vector: np.ndarray | None, pre: Preprocessing, filename: str, title: str = "", shift: float = 0.0,
    e0: float | None = None,
) -> None:
    """Plot a raw spectrum and its preprocessed model input side by side and save a PNG.

    Args:
        xas: the spectrum as read.
        vector: its model input, or None when preprocessing refused it (the raw panel is still drawn).
        pre: the preprocessing.
        filename: PNG to write.
        title: plot title.
        shift: calibration shift in eV added to the energies.
        e0: edge energy in eV, marked on the raw panel with the model window.
    """
    plt = pyplot()
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 3.8))
    ax1.plot(xas.x + shift, xas.y, lw=1.2)
    ax1.axvspan(pre.e_min, pre.e_max, color="0.9", zorder=0, label="model window")
    if e0 is not None:
        ax1.axvline(e0, color="C3", lw=1.0, ls="--", label=f"e0 {e0:.1f} eV")
    ax1.legend(fontsize=7)
    ax1.set(xlabel="Energy (eV)", ylabel="mu (raw)", title=f"raw {title}".strip())
    if vector is not None:
        ax2.plot(pre.grid, pre.spectra(vector), lw=1.2, color="C1")
    ax2.set(
        xlabel="Energy (eV)",
        ylabel=f"mu ({pre.normalization})",
        title=f"model input: {pre.n_points} points, v{pre.version}",
    )
    fig.tight_layout()
    fig.savefig(filename, dpi=110)
    plt.close(fig)


def evidence_figure(vector: np.ndarray, pre: Preprocessing, evidence: list[dict], neighbours, title: str = ""):
    """A figure of a spectrum's model input over its most similar shipped spectra (what to check before a label).

    The title is the verdict (label, confidence, set, or "don't know" with its reason), wrapped to the figure.
    """
    import textwrap

    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7, 4.4))
    for ev, row in zip(evidence, neighbours):
        ax.plot(pre.grid, row, lw=1.0, alpha=0.8,
                label=f"{ev['formula']} {ev['environment']} ({ev['task_id']}), similarity "
                      f"{ev.get('similarity', ev['cosine_similarity']):.2f}")
    ax.plot(pre.grid, pre.spectra(vector), lw=2.0, color="k", label="this spectrum")
    ax.set(xlabel="Energy (eV)", ylabel=f"mu ({pre.normalization})")
    ax.set_title("\n".join(textwrap.wrap(title, 80)), fontsize=9,
                 color="C3" if title.startswith("don't know") else "k")
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def plot_evidence(vector: np.ndarray, pre: Preprocessing, evidence: list[dict], neighbours: np.ndarray,
                  filename: str, title: str = "") -> None:
    """Save :func:`evidence_figure` as a PNG."""
    plt = pyplot()
    fig = evidence_figure(vector, pre, evidence, neighbours, title)
    fig.savefig(filename, dpi=110)
    plt.close(fig)
