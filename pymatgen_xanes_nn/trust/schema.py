"""The schema of a model's trust blocks (``ood`` and ``conformal``): what each field may hold, checked by pydantic.

A model file is data from someone else: every value the predictions rely on is checked here, field by field, with
strict types (no string or bool passes as a number) and no NaN or infinity. What depends on the rest of the model
(array shapes against the grid, the labels or the code size; the members' held-out spectra against the calibration)
is checked by :meth:`~pymatgen_xanes_nn.classifier.XANESClassifier.validate`, which runs these schemas first.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import numpy as np
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, model_validator

from pymatgen_xanes_nn.io.model_file import ALPHA_RANGE, MAX_REFERENCE, InvalidModelError
from pymatgen_xanes_nn.trust.evidence import RULES
from pymatgen_xanes_nn.trust.ood import NETWORK_SCORES, OOD_SCORES

#: Fewest held-out scores a calibration may hold: below, a p-value cannot reach a usual level.
MIN_CALIBRATION = 10

ScoreName = Literal[OOD_SCORES]  # type: ignore[valid-type]
NetworkScoreName = Literal[NETWORK_SCORES]  # type: ignore[valid-type]
Probability = Annotated[float, Field(ge=0.0, le=1.0)]


def _calibration_scores(value: Any) -> np.ndarray:
    """Held-out scores of one OOD score: >= 10 finite numbers, sorted (p-values are read by binary search)."""
    a = np.asarray(value, dtype=float) if not isinstance(value, np.ndarray) else value.astype(float, copy=False)
    if a.ndim != 1 or len(a) < MIN_CALIBRATION:
        raise ValueError(f"needs >= {MIN_CALIBRATION} scores in one row, got shape {a.shape}")
    if not np.isfinite(a).all():
        raise ValueError("holds NaN or infinite scores")
    if np.any(np.diff(a) < 0):
        raise ValueError("scores must be sorted")
    return a


def _reference(value: list[float]) -> list[float]:
    """``[median, scale]`` of a network score on its training spectra; a huge scale would squash every score to 0."""
    median, scale = value
    if not (abs(median) < MAX_REFERENCE and 0 < scale < MAX_REFERENCE):
        raise ValueError(f"needs |median| < {MAX_REFERENCE:g} and 0 < scale < {MAX_REFERENCE:g}, got {value}")
    return value


class OODBlock(BaseModel):
    """The scalar and calibration fields of ``ood`` (its arrays are checked against the model's shapes elsewhere)."""

    model_config = ConfigDict(extra="allow", strict=True, allow_inf_nan=False, arbitrary_types_allowed=True)

    scores: list[ScoreName] = Field(min_length=1)
    alpha: Annotated[float, Field(ge=ALPHA_RANGE[0], le=ALPHA_RANGE[1])]
    calibration: dict[ScoreName, Annotated[Any, AfterValidator(_calibration_scores)]]
    reference: dict[NetworkScoreName, Annotated[list[float], Field(min_length=2, max_length=2),
                                                AfterValidator(_reference)]] | None = None

    @model_validator(mode="after")
    def _scores_are_calibrated(self) -> OODBlock:
        missing = sorted(set(self.scores) - set(self.calibration))
        if missing:
            raise ValueError(f"scores {missing} have no calibration")
        if self.reference is not None and set(self.reference) != set(NETWORK_SCORES):
            raise ValueError(f"reference needs [median, scale] for each of {list(NETWORK_SCORES)}")
        return self


class ConformalBlock(BaseModel):
    """``conformal``: the set level, one threshold per label, the don't-know floor and the evidence rule."""

    model_config = ConfigDict(extra="allow", strict=True, allow_inf_nan=False)

    level: Annotated[float, Field(gt=0.0, lt=1.0)]
    thresholds: list[Probability] = Field(min_length=2)
    confidence_floor: Probability = 0.0  # models before round 4 have none
    evidence_rule: Literal[RULES] = "none"  # type: ignore[valid-type]  # models before round 8 have none


def check_trust_blocks(name: str, ood: dict[str, Any], conformal: dict[str, Any]) -> None:
    """Check ``ood`` and ``conformal`` against their schemas.

    Raises:
        InvalidModelError: naming the model, the field (e.g. ``ood.alpha``) and what is wrong with it.
    """
    for block, schema, value in (("ood", OODBlock, ood), ("conformal", ConformalBlock, conformal)):
        try:
            schema.model_validate(value)
        except ValidationError as exc:
            first = exc.errors(include_url=False, include_input=False)[0]
            where = ".".join(str(p) for p in (block, *first["loc"]))
            raise InvalidModelError(f"Model {name!r}: {where}: {first['msg']}") from None
