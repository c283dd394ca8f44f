"""Evaluation: the suites run by ``centinela evaluate`` (seed, skab, sim, calibration) and the
scorecard the demo shares with the sim suite. Nothing imports this package but ``centinela``."""
