"""pymatgen-xanes-nn: Si K-edge XANES interpretation with neural networks, as a pymatgen plugin."""

from setuptools import find_packages, setup

EXTRAS = {
    # training, evaluation and the seed's experiments
    "train": ["tensorflow-cpu>=2.21", "keras>=3.15", "scikit-learn>=1.5"],
    # FEFF10 compiled, from PyPI
    "feff": ["feff10-rs>=0.2.4"],
    "atomate": ["atomate>=1.1.0", "FireWorks>=2.1.4"],
    # the structure corpus (crystal-toolkit's data file: pip install --no-deps crystal-toolkit)
    "corpus": ["larixite>=2026.1.0", "sqlalchemy>=2.0", "xraydb>=4.5"],
    # a MongoDB-protocol server for integration tests and local pipelines
    "server": ["secantusdb==0.7.0b3"],
    "test": ["pytest>=8", "hypothesis>=6.100"],
}
EXTRAS["all"] = sorted({req for reqs in EXTRAS.values() for req in reqs})
# the relaxation study's ML potential (CHGNet ships its weights; PyTorch is ~3 GB): only `xanes-nn relax-study`
# needs it, so it stays out of "all"
EXTRAS["relax"] = ["chgnet>=0.4"]

setup(
    name="pymatgen-xanes-nn",
    version="0.1.0",
    description="Classify Si K-edge XANES spectra with autoencoder + feed-forward neural networks (pymatgen plugin)",
    long_description=open("README.md").read(),
    long_description_content_type="text/markdown",
    license="MIT",
    python_requires=">=3.10",
    packages=find_packages(include=["pymatgen_xanes_nn", "pymatgen_xanes_nn.*"]),
    package_data={"pymatgen_xanes_nn": ["data/*", "data/**/*"]},
    include_package_data=True,
    install_requires=[
        "numpy>=1.26",
        "scipy>=1.11",
        "pymatgen>=2024.1.1",
        "monty>=2024.1.1",
        "maggma>=0.70",
        "pymongo>=4.0",
        # imported directly (maggma brings them too): the embedded store's matcher, JSON parsing, output schemas
        "mongomock-ng>=7.0",
        "orjson>=3.9",
        "pydantic>=2.5",
        "matplotlib>=3.7",
        "tqdm>=4.60",
    ],
    extras_require=EXTRAS,
    entry_points={"console_scripts": ["xanes-nn = pymatgen_xanes_nn.cli:main"]},
    classifiers=[
        "Programming Language :: Python :: 3",
        "Topic :: Scientific/Engineering :: Chemistry",
        "Topic :: Scientific/Engineering :: Physics",
    ],
)
