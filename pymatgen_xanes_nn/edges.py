"""Absorption edges as configuration: one definition per edge, read by every stage.

An :class:`Edge` holds what differs between, say, the Si K edge and the S K edge: the absorber, where its edge
lies on FEFF's energy scale, the window of the model grid, the label schemes and the shipped model names, and the
offset between FEFF's energies and a beamline's. Adding an edge is one new definition here plus its data.
"""

from __future__ import annotations

from dataclasses import dataclass

from pymatgen_xanes_nn.errors import InputError


@dataclass(frozen=True)
class Edge:
    """One absorption edge.

    Args:
        element: the absorbing element, e.g. ``"S"``.
        edge: the edge (``"K"``).
        e0_feff: a typical e0 of the dataset's FEFF spectra, in eV: where e0-aligned inputs put every edge.
        window: the model grid's energy window ``(start, end)`` in eV on FEFF's scale.
        e0_range: where e0 of this edge may lie on FEFF's scale, in eV; a spectrum outside it is another edge.
        label_schemes: the label schemes of this edge's models.
        models: the shipped model names, the default (``predict`` without ``--model``) first.
        corpus_file: the structure corpus in ``pymatgen_xanes_nn/data``.
        tasks_collection: the FEFF task documents of real crystals (a base file and/or shards).
        derived_collection: the FEFF task documents of substitution-derived structures (training only; ``""``: none).
        feff_preset: the FEFF settings of the dataset (:data:`~pymatgen_xanes_nn.datagen.simulate.PRESETS`).
        calibration_offset: measured energy minus FEFF energy, in eV, for the same compound (a beamline's scale);
            added to FEFF's energies by nothing in the models, recorded so a user's spectrum can be put on FEFF's
            scale (subtract it).
        calibration_note: how ``calibration_offset`` was obtained.
        metal_group: the environment class of rare environments in which the absorber is bonded to metals only.
        other_group: the environment class of the other rare environments.
        references: standards on the model's (FEFF's) energy scale: ``(compound, task id, e0 in eV)``, e0 as
            :func:`~pymatgen_xanes_nn.preprocessing.find_edge` finds it (a test checks them against the dataset).
            ``xanes-nn calibrate`` compares a user's measured standard with these.
    """

    element: str
    edge: str
    e0_feff: float
    window: tuple[float, float]
    e0_range: tuple[float, float]
    label_schemes: tuple[str, ...]
    models: tuple[str, ...]
    corpus_file: str
    tasks_collection: str
    derived_collection: str = ""
    feff_preset: str = "dataset"
    calibration_offset: float = 0.0
    calibration_note: str = ""
    metal_group: str = ""
    other_group: str = ""
    references: tuple[tuple[str, str, float], ...] = ()

    @property
    def name(self) -> str:
        """``"Si K"``."""
        return f"{self.element} {self.edge}"

    @property
    def tabulated_e0(self) -> float | None:
        """The tabulated K-edge energy of the element (eV), the scale a beamline is usually calibrated on."""
        return K_EDGES_EV.get(self.element) if self.edge == "K" else None

    def reference(self, compound: str) -> tuple[str, float]:
        """``(task id, e0)`` of a reference compound on the model's scale.

        Raises:
            ValueError: naming the references there are.
        """
        for name, task_id, e0 in self.references:
            if name == compound or name.split(" ")[0] == compound:
                return task_id, e0
        raise InputError(f"No {self.name} reference {compound!r}; references: "
                         + ", ".join(name for name, _, _ in self.references))

    @property
    def default_model(self) -> str:
        """The model ``predict`` uses for this edge when none is named."""
        return self.models[0]

    def contains_e0(self, e0: float) -> bool:
        """True when an edge found at ``e0`` eV (FEFF's scale) may be this edge."""
        return self.e0_range[0] <= e0 <= self.e0_range[1]


SI_K = Edge(
    element="Si",
    edge="K",
    e0_feff=1846.0,
    window=(1836.0, 1896.0),
    e0_range=(1830.0, 1860.0),
    label_schemes=("environment", "chemsys"),
    models=("si_k_environment", "si_k_chemsys"),
    corpus_file="corpus.json.gz",
    tasks_collection="si_k_tasks",
    derived_collection="si_k_tasks_derived_relaxed",
    metal_group="Si-metallic",
    other_group="Si-other",
    references=(("Si (diamond)", "mbd-165-s0", 1840.83), ("SiO2 (alpha-quartz)", "amcsd-789-s0", 1842.61)),
    calibration_note="No measured Si K-edge standard is in the project yet: no FEFF-to-measured offset is fitted. "
                     "FEFF's diamond Si sits 1.8 eV above the tabulated Si K edge (1839.0 eV).",
)

S_K = Edge(
    element="S",
    edge="K",
    e0_feff=2470.0,
    window=(2460.0, 2530.0),
    e0_range=(2455.0, 2495.0),
    label_schemes=("oxidation", "environment"),
    models=("s_k_oxidation", "s_k_environment"),
    corpus_file="corpus_s.json.gz",
    tasks_collection="s_k_tasks",
    derived_collection="s_k_tasks_derived",
    metal_group="S-metal",
    other_group="S-other",
    references=(("S8 (alpha-sulfur)", "amcsd-15833-S0", 2468.24), ("FeS2 (pyrite)", "mbd-3727-S0", 2471.19)),
    calibration_offset=2.06,
    calibration_note="e0 of the measured elemental-sulfur standard (APS 13-ID-E, S_elemental_rt_01.xdi: 2470.30 eV) "
                     "minus e0 of FEFF10 alpha-S8 (amcsd-15833-S0: 2468.24 eV). FEFF compresses chemical shifts: "
                     "measured gypsum lies 10.4 eV above S8 (e0), FEFF sulfates a median 2.2 eV; one offset does "
                     "not put every oxidation state on the measured scale.",
)

#: Every edge with a definition, by absorbing element.
EDGES: dict[str, Edge] = {e.element: e for e in (SI_K, S_K)}
#: The edge assumed where nothing says otherwise (a file that names no element, a command without ``--element``);
#: prediction still routes by where the edge lies.
DEFAULT_EDGE: Edge = SI_K
#: The absorbing element of :data:`DEFAULT_EDGE`.
DEFAULT_ELEMENT: str = DEFAULT_EDGE.element


#: Tabulated K-edge energies (eV; Bearden & Burr 1967, as xraydb gives them) of the light elements whose K edges
#: lie near ours: to name the edge a spectrum looks like when no model handles it.
K_EDGES_EV = {"Na": 1070.8, "Mg": 1303.0, "Al": 1559.0, "Si": 1839.0, "P": 2145.5, "S": 2472.0, "Cl": 2822.4,
              "Ar": 3205.9, "K": 3608.4, "Ca": 4038.5}
#: How far (eV) a measured or FEFF e0 may lie from the tabulated edge and still be named after it.
EDGE_NAMING_TOLERANCE = 25.0


def looks_like(e0: float) -> str | None:
    """The K edge an edge found at ``e0`` eV looks like (e.g. ``"Al K"``), or None if no tabulated one is near."""
    element, energy = min(K_EDGES_EV.items(), key=lambda kv: abs(kv[1] - e0))
    return f"{element} K" if abs(energy - e0) <= EDGE_NAMING_TOLERANCE else None


def edges_in(lo: float, hi: float) -> list[str]:
    """The tabulated K edges (e.g. ``["Al K"]``) a spectrum from ``lo`` to ``hi`` eV may hold."""
    return [f"{el} K" for el, energy in K_EDGES_EV.items() if lo - EDGE_NAMING_TOLERANCE <= energy <= hi]


def edge_for(e0: float, element: str | None = None) -> Edge:
    """The defined edge a spectrum with its edge at ``e0`` eV belongs to.

    The element a file names is taken when its edge contains ``e0``; otherwise the edge is found from ``e0`` alone
    (files that do not say, or say wrongly).

    Raises:
        ValueError: naming the edge the spectrum looks like, when no defined edge contains ``e0``.
    """
    if element in EDGES and EDGES[element].contains_e0(e0):
        return EDGES[element]
    for edge in EDGES.values():
        if edge.contains_e0(e0):
            return edge
    name = looks_like(e0)
    what = f"looks like an {name} edge" if name else "matches no tabulated K edge"
    raise InputError(f"The spectrum {what} (e0 {e0:.1f} eV); no model for it: models exist for the "
                     + ", ".join(f"{e.name} edge ({e.e0_range[0]:g}-{e.e0_range[1]:g} eV)" for e in EDGES.values()))


def get_edge(element: str | Edge) -> Edge:
    """The edge of ``element`` (an :class:`Edge` is returned as is).

    Raises:
        ValueError: if no edge of that element is defined.
    """
    if isinstance(element, Edge):
        return element
    if element not in EDGES:
        raise InputError(f"No edge defined for {element!r}; defined: {', '.join(sorted(EDGES))}")
    return EDGES[element]
