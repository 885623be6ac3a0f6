"""Studies: the seed's experiments, domain shift, the OOD benchmark and the results report."""
