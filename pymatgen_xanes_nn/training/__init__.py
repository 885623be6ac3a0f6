"""Training and evaluation: fitting the networks, splits, perturbations, metrics."""
