"""Typed output documents of the builders (emmet-style pydantic models with field descriptions).

Every successful document a builder writes is validated against its model before it is stored, so a
collection holds what is described here. maggma adds its bookkeeping fields to every document:
``last_updated`` (the source's, UTC), ``state`` (``"successful"`` / ``"failed"``), ``error`` (failed only),
``_bt`` (build time) and ``_process_time`` (s). A failed document holds only its key and those fields.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class _Doc(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Provenance(_Doc):
    """Where a spectrum comes from: copied from the FEFF task document's ``metadata``."""

    structure_id: str | int = Field(description="the crystal the site belongs to (the material key)")
    source: str | None = Field(None, description="structure source: amcsd, matbench, derived, ...")
    source_id: str | int | None = Field(None, description="id in the source database")
    mineral: str | None = Field(None, description="mineral name, if any")
    formula: str | None = Field(None, description="reduced formula")
    chemsys: str | None = Field(None, description="chemical system, elements sorted and joined by '-' (e.g. O-Si)")
    group_id: str | int | None = Field(None, description="grouping for honest splits (polymorph family, parent)")


class SpectrumDoc(Provenance):
    """``xanes_spectra``: one preprocessed site spectrum per FEFF task (key ``task_id``)."""

    task_id: str | int = Field(description="the FEFF task document's key")
    multiplicity: int = Field(description="number of symmetry-equivalent absorber sites this site stands for")
    cn: int | None = Field(None, description="coordination number of the absorber")
    environment: str | None = Field(None, description="coordination environment label (SiO4, SiC4, Si-other, ...)")
    absorbing_atom: int | str | None = Field(None, description="absorbing site index (or element) of the task")
    spectrum: list[float] = Field(description="normalized mu on the preprocessing's energy grid (500 points); for an "
                                              "e0-aligned preprocessing with e0_column, then e0 minus its e0_reference "
                                              "(eV)")
    e0: float = Field(description="edge energy found in the raw spectrum, eV (maximum of the derivative)")
    edge_step: float = Field(description="edge jump used for normalization, in the raw spectrum's units")
    energy_range: list[float] = Field(description="first and last energy of the raw spectrum, eV")
    preprocessing: dict[str, Any] = Field(description="the full preprocessing definition (as_dict)")
    preprocessing_version: str = Field(description="preprocessing version string")
    preprocessing_fingerprint: str = Field(description="hash of every preprocessing parameter; a model refuses "
                                                       "spectra whose fingerprint differs from its own")
    structure_fingerprint: str | None = Field(None, description="hash of the task's structure (species, lattice): "
                                                                "the sites of one material share it")


class MaterialSpectrumDoc(Provenance):
    """``xanes_materials``: the multiplicity-weighted average of a material's site spectra (key ``structure_id``)."""

    task_ids: list[str | int] = Field(description="the site spectra averaged")
    spectrum: list[float] = Field(description="weighted average of the site spectra, same grid")
    site_weights: dict[str, float] = Field(description="task_id -> multiplicity used as weight")
    n_sites: int = Field(description="number of site spectra averaged")
    preprocessing: dict[str, Any] = Field(description="the sites' preprocessing definition")
    preprocessing_version: str = Field(description="preprocessing version string")
    preprocessing_fingerprint: str = Field(description="the sites' common preprocessing fingerprint")


class ClassificationDoc(_Doc):
    """``xanes_classifications`` (key ``task_id``) and ``xanes_material_classifications`` (key ``structure_id``)."""

    task_id: str | int | None = Field(None, description="site spectrum classified (site collection)")
    structure_id: str | int | None = Field(None, description="material")
    chemsys: str | None = Field(None, description="the material's chemical system (for comparison)")
    environment: str | None = Field(None, description="the site's coordination environment (for comparison)")
    label: str = Field(description="most probable class")
    probabilities: dict[str, float] = Field(description="calibrated probability of every class")
    confidence: float = Field(description="probability of the label")
    prediction_set: list[str] = Field(description="labels kept at set_level coverage, most probable first; empty "
                                                  "or large means don't know. Ensemble models: cross-conformal "
                                                  "(each fold network against its own out-of-fold scores); "
                                                  "single-network models: thresholds fitted on fold networks, "
                                                  "applied to the final network. Neither has an exact "
                                                  "finite-sample guarantee; coverage is measured held out")
    set_level: float = Field(description="nominal coverage of the prediction set (0.9)")
    ood: bool = Field(description="out of distribution: ood_pvalue < ood_alpha")
    ood_pvalue: float = Field(description="conformal p-value of the OOD score(s) against training spectra")
    ood_alpha: float = Field(description="significance level of the OOD flag")
    ood_scores: dict[str, float] = Field(description="every OOD score as the p-value reads it (knn, edge_offset raw; "
                                                     "the network scores reconstruction, mahalanobis, energy, ... "
                                                     "standardized by the model's own training spectra in format-3 "
                                                     "models)")
    quality: dict[str, float] | None = Field(
        None, description="input quality of the raw spectrum (edge_step_ev: largest energy step near the edge, eV; "
                          "noise: share of the edge step); null when classified from the grid")
    dont_know: bool = Field(description="out of distribution, poor input, an empty or too large prediction set, "
                                        "confidence below the floor fitted out of fold, or evidence that "
                                        "disagrees with the label (models with an evidence rule)")
    reason: str = Field(description="why dont_know is set ('' when it is not)")
    evidence: list[dict[str, Any]] = Field(description="most similar shipped spectra: task id, formula, "
                                                       "environment (S: also oxidation state), similarity, "
                                                       "and the class it takes in this model")
    reconstruction_error: float = Field(description="autoencoder reconstruction MSE")
    latent_distance: float = Field(description="Mahalanobis distance of the code to the training codes")
    latent: list[float] = Field(description="autoencoder code of the spectrum")
    members_disagreeing: float | None = Field(None, description="ensemble models: share of fold networks whose top "
                                                                 "label differs from the label (not calibrated)")
    model: str = Field(description="model name")
    model_version: str = Field(description="model version; a new version reclassifies")


#: The model of each output collection (named by pipeline stage).
DOCUMENTS: dict[str, type[BaseModel]] = {
    "spectra": SpectrumDoc,
    "materials": MaterialSpectrumDoc,
    "classifications": ClassificationDoc,
    "material_classifications": ClassificationDoc,
}


def validated(model: type[BaseModel], doc: dict[str, Any]) -> dict[str, Any]:
    """``doc`` checked against ``model`` (raises pydantic's ``ValidationError`` naming the field).

    Fields the document does not set are left out (a material classification has no ``task_id``).
    """
    return model.model_validate(doc).model_dump(exclude_unset=True)


def schema_markdown() -> str:
    """The output collections and their fields as Markdown (the README's "Output documents" section)."""
    lines = []
    for collection, model in (("xanes_spectra", SpectrumDoc), ("xanes_materials", MaterialSpectrumDoc),
                              ("xanes_classifications, xanes_material_classifications", ClassificationDoc)):
        lines += [f"**{collection}** ({model.__name__}): {model.__doc__.split(': ', 1)[-1]}", "",
                  "| field | type | description |", "|---|---|---|"]
        for name, field in model.model_fields.items():
            ann = field.annotation
            kind = ann.__name__ if isinstance(ann, type) else str(ann).replace("typing.", "").replace("|", "or")
            lines.append(f"| `{name}` | {kind} | {field.description} |")
        lines.append("")
    return "\n".join(lines)
