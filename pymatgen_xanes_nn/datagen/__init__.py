"""Data generation: structure corpora, substitution, FEFF runs, the dataset card and the FEFF studies."""
