"""What :meth:`~pymatgen_xanes_nn.classifier.XANESClassifier.classify` returns: a verdict one can read and show.

A :class:`Classification` is a plain ``dict`` (every key of the JSON output, ``json.dumps`` works as before) that
also prints a short verdict (``print(result)``) and draws itself in Jupyter: the spectrum over its most similar
shipped spectra, with the label, confidence, set and the "don't know" reason in the title.
"""

from __future__ import annotations

import html
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np

    from pymatgen_xanes_nn.preprocessing import Preprocessing


def verdict(result: dict[str, Any]) -> str:
    """One line: ``"don't know: <reason>"`` or ``"<label> (confidence 0.97)"``, with the set."""
    members = ", ".join(result["prediction_set"])
    level = f"{100 * result['set_level']:.0f}%"
    if result["dont_know"]:
        return f"don't know: {result['reason']} (most probable {result['label']}, confidence " \
               f"{result['confidence']:.2f}; {level} set {{{members}}})"
    return f"{result['label']} (confidence {result['confidence']:.2f}; {level} set {{{members}}})"


class Classification(dict):
    """One spectrum's classification: a dict of the JSON fields, printable and drawable.

    Args:
        fields: the JSON fields (label, probabilities, confidence, prediction_set, ood, ..., evidence).
        model_input: the spectrum on the model's grid (for the figure; not a field).
        preprocessing: the model's preprocessing (its grid).
    """

    def __init__(self, fields: dict[str, Any], model_input: np.ndarray | None = None,
                 preprocessing: Preprocessing | None = None):
        super().__init__(fields)
        self._input = model_input
        self._preprocessing = preprocessing

    @property
    def verdict(self) -> str:
        """The one-line verdict (see :func:`verdict`)."""
        return verdict(self)

    def __str__(self) -> str:
        lines = [f"{self.get('model', 'model')}: {self.verdict}"]
        top = sorted(self["probabilities"].items(), key=lambda kv: -kv[1])[:3]
        lines.append("  probabilities: " + ", ".join(f"{k} {v:.3f}" for k, v in top))
        lines.append(f"  out-of-distribution p-value {self['ood_pvalue']:.3g} (flag below {self['ood_alpha']})")
        if self.get("quality"):
            q = self["quality"]
            lines.append("  input quality: " + ", ".join(f"{k} {v:.3g}" for k, v in q.items()))
        for ev in self.get("evidence", []):
            state = f" {ev['oxidation']}" if ev.get("oxidation") else ""
            lines.append(f"  similar: {ev['formula']} {ev['environment']}{state} ({ev['task_id']}), similarity "
                         f"{ev.get('similarity', ev['cosine_similarity']):.2f} (centred cosine)")
        return "\n".join(lines)

    def figure(self, title: str = ""):
        """A matplotlib figure: the spectrum over its evidence, ``title`` and the verdict above (None without input).

        Args:
            title: what to put before the verdict (e.g. the file name).
        """
        if self._input is None or self._preprocessing is None:
            return None
        from pymatgen_xanes_nn.plotting import evidence_figure
        from pymatgen_xanes_nn.trust.evidence import reference_vectors

        evidence = self.get("evidence", [])
        rows = reference_vectors([e["task_id"] for e in evidence], self._preprocessing) if evidence else []
        return evidence_figure(self._input, self._preprocessing, evidence, rows,
                               title=f"{title}: {self.verdict}" if title else self.verdict)

    def _repr_png_(self) -> bytes | None:
        import io

        fig = self.figure()
        if fig is None:
            return None
        from pymatgen_xanes_nn.plotting import pyplot

        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=100)
        pyplot().close(fig)
        return buf.getvalue()

    def _repr_html_(self) -> str:
        import base64

        png = self._repr_png_()
        img = f'<img src="data:image/png;base64,{base64.b64encode(png).decode()}"/>' if png else ""
        return f"<pre>{html.escape(str(self))}</pre>{img}"
