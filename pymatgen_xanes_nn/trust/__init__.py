"""Trust: out-of-distribution scores, conformal sets, the don't-know policy, input quality and evidence."""
