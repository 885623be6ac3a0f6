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
    xas: XAS, vector: np.ndarray, pre: Preprocessing, filename: str, title: str = "", shift: float = 0.0
) -> None:
    """Plot a raw spectrum and its preprocessed model input side by side and save a PNG."""
    plt = pyplot()
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 3.8))
    ax1.plot(xas.x + shift, xas.y, lw=1.2)
    ax1.set(xlabel="Energy (eV)", ylabel="mu (raw)", title=f"raw {title}".strip())
    ax2.plot(pre.grid, vector, lw=1.2, color="C1")
    ax2.set(
        xlabel="Energy (eV)",
        ylabel=f"mu ({pre.normalization})",
        title=f"model input: {pre.n_points} points, v{pre.version}",
    )
    fig.tight_layout()
    fig.savefig(filename, dpi=110)
    plt.close(fig)
