"""atomate add-on: run FEFF10 (``feff10-rs``) inside atomate's XAS workflows and classify the spectrum.

>>> from pymatgen_xanes_nn.pipeline.atomate import get_wf_xanes_classified
>>> wf = get_wf_xanes_classified(structure, db_file=">>db_file<<")   # one firework per unique Si site
>>> launchpad.add_wf(wf)

Or on a workflow you already have (atomate's ``get_wf_xas``):

>>> wf = use_feff10(add_xanes_classification(wf, model="si_k_environment"))

Each firework then writes FEFF inputs (atomate), runs FEFF10 (:class:`RunFeff10`, which fizzles the
firework on failure), stores the task document (atomate's ``SpectrumToDbTask``) and classifies the
spectrum (:class:`ClassifyXANESTask`): the result goes to the ``xanes_classifications`` collection
next to atomate's ``tasks`` and into the task document's ``xanes_classification`` field; with
``db_file=None`` both are JSON files in the launch directory. A spectrum that cannot be
classified records the error; the task document is never lost.
"""

from __future__ import annotations

import json
import os
import shutil
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from fireworks import FiretaskBase, FWAction, explicit_serialize

from pymatgen_xanes_nn.classifier import DEFAULT_MODEL

if TYPE_CHECKING:
    from fireworks import Workflow
    from pymatgen.core import Structure

CLASSIFICATION_COLLECTION = "xanes_classifications"
RESULT_FILE = "xanes_classification.json"


@explicit_serialize
class RunFeff10(FiretaskBase):
    """Run FEFF10 from ``feff10-rs`` on ``feff.inp`` in the current directory (replaces ``RunFeffDirect``).

    ``xmu.dat`` is copied next to ``feff.inp``; FEFF runs in ``feff10_run/`` because it rewrites its
    input file there. A failed run raises, so the firework fizzles with FEFF's error.

    Optional params:
        timeout (float): seconds before the run is stopped (default: none).
    """

    optional_params = ["timeout"]

    def run_task(self, fw_spec):
        """Run FEFF and copy ``xmu.dat`` into the launch directory."""
        from pymatgen_xanes_nn.datagen.simulate import run_feff

        timing = run_feff("feff.inp", os.path.abspath("feff10_run"), timeout=self.get("timeout"))
        shutil.copy(os.path.join("feff10_run", "xmu.dat"), "xmu.dat")
        return FWAction(stored_data={"feff10_timing": timing})


@explicit_serialize
class ClassifyXANESTask(FiretaskBase):
    """Classify the spectrum computed in this firework and store the result.

    Optional params:
        model (str): pretrained model name or model file (default:
            :data:`~pymatgen_xanes_nn.classifier.DEFAULT_MODEL`).
        db_file (str): atomate db file (supports env_chk); None writes JSON files instead.
        collection (str): classification collection (default ``"xanes_classifications"``).
        output_file (str): spectrum file (default ``"xmu.dat"``).
    """

    optional_params = ["model", "db_file", "collection", "output_file"]

    def run_task(self, fw_spec):
        """Classify ``xmu.dat``; errors are recorded in the result, never raised."""
        from atomate.utils.utils import env_chk

        from pymatgen_xanes_nn.classifier import XANESClassifier
        from pymatgen_xanes_nn.io.readers import read_xmu

        model = self.get("model", DEFAULT_MODEL)
        dir_name = os.path.abspath(os.getcwd())
        result: dict[str, Any] = {"dir_name": dir_name, "model": model,
                                  "last_updated": datetime.now(timezone.utc)}
        try:
            clf = XANESClassifier.load(model)
            result.update(clf.classify(read_xmu(self.get("output_file", "xmu.dat"))))
            result["state"] = "successful"
        except Exception as exc:  # a bad spectrum is recorded, the task document stays
            result.update({"state": "failed", "error": f"{type(exc).__name__}: {exc}"})
        try:
            db_file = env_chk(self.get("db_file"), fw_spec)
        except KeyError:  # ">>db_file<<" with no env.db_file in the FireWorker: say what is missing
            raise ValueError(f"db_file={self.get('db_file')!r} needs `env: {{db_file: /path/to/db.json}}` in your "
                             "my_fworker.yaml (atomate's convention), or pass db_file=None to write JSON files "
                             "instead") from None
        if not db_file:
            if os.path.exists("feff_task.json"):
                with open("feff_task.json") as f:
                    task = json.load(f)
                task["xanes_classification"] = {k: v for k, v in result.items() if k != "last_updated"}
                with open("feff_task.json", "w") as f:
                    json.dump(task, f)
            with open(RESULT_FILE, "w") as f:
                json.dump(result, f, default=str)
        else:
            from atomate.feff.database import FeffCalcDb

            db = FeffCalcDb.from_db_file(db_file, admin=True)
            task = db.collection.find_one({"dir_name": dir_name}, {"task_id": 1}, sort=[("last_updated", -1)])
            result["task_id"] = task["task_id"] if task else None
            db.db[self.get("collection", CLASSIFICATION_COLLECTION)].insert_one(dict(result))
            if task:
                summary = {k: result.get(k) for k in ("state", "label", "confidence", "ood", "model_version",
                                                      "error")}
                db.collection.update_one({"task_id": task["task_id"]}, {"$set": {"xanes_classification": summary}})
        return FWAction(stored_data={"xanes_label": result.get("label"), "state": result["state"]})


def _task_name(task) -> str:
    """``{{atomate.feff.firetasks.run_calc.RunFeffDirect}}`` -> ``RunFeffDirect``."""
    return task.fw_name.strip("{}").split(".")[-1]


def use_feff10(wf: Workflow, timeout: float | None = None) -> Workflow:
    """Powerup: replace atomate's ``RunFeffDirect`` (an external ``feff`` executable) with :class:`RunFeff10`."""
    for fw in wf.fws:
        for i, task in enumerate(fw.tasks):
            if _task_name(task) == "RunFeffDirect":
                fw.tasks[i] = RunFeff10(timeout=timeout) if timeout else RunFeff10()
    return wf


def add_xanes_classification(
    wf: Workflow, model: str = DEFAULT_MODEL, db_file: str | None = None, collection: str = CLASSIFICATION_COLLECTION
) -> Workflow:
    """Powerup: append :class:`ClassifyXANESTask` to every firework that stores a FEFF spectrum.

    Args:
        wf: an atomate FEFF workflow (e.g. from ``get_wf_xas``).
        model: pretrained model name or model file.
        db_file: atomate db file; default: the one the workflow's ``SpectrumToDbTask`` uses.
        collection: where classifications go (in the same database as atomate's tasks).
    """
    for fw in wf.fws:
        spectrum_tasks = [t for t in fw.tasks if _task_name(t) == "SpectrumToDbTask"]
        if not spectrum_tasks:
            continue
        fw_db = db_file if db_file is not None else spectrum_tasks[-1].get("db_file")
        fw.tasks.append(ClassifyXANESTask(model=model, db_file=fw_db, collection=collection))
    return wf


def get_wf_xanes_classified(
    structure: Structure,
    settings: str = "dataset",
    model: str = DEFAULT_MODEL,
    db_file: str | None = None,
    metadata: dict | None = None,
) -> Workflow:
    """Si K-edge XANES with FEFF10 for every symmetry-unique Si site, each classified.

    Args:
        structure: a structure containing Si.
        settings: FEFF settings preset (see :data:`pymatgen_xanes_nn.datagen.simulate.PRESETS`; ``"dataset"``
            is the setting the shipped dataset was computed with).
        model: pretrained model name or model file.
        db_file: atomate db file (``">>db_file<<"`` for env_chk); None: JSON files in each launch dir.
        metadata: extra metadata for the task documents.
    """
    from atomate.feff.fireworks.core import XASFW
    from fireworks import Workflow

    from pymatgen_xanes_nn.datagen.corpus import absorber_sites
    from pymatgen_xanes_nn.datagen.simulate import get_settings

    preset = get_settings(settings)
    sites = absorber_sites(structure)
    if not sites:
        raise ValueError(f"{structure.composition.reduced_formula} has no Si site")
    fws = []
    for site in sites:
        meta = dict(metadata or {}, absorbing_atom_index=site["site_index"], multiplicity=site["multiplicity"],
                    environment=site["environment"], feff_settings=preset.name,
                    chemsys=structure.composition.chemical_system)
        fws.append(XASFW(
            site["site_index"], structure, edge="K", radius=preset.radius, feff_cmd="feff10", db_file=db_file,
            metadata=meta, name=f"XANES-K-{site['site_index']}",
            override_default_feff_params={"user_tag_settings": preset.user_tag_settings()},
        ))
    wf = Workflow(fws, name=f"{structure.composition.reduced_formula}:Si K-edge XANES classified")
    return add_xanes_classification(use_feff10(wf), model=model, db_file=db_file)
