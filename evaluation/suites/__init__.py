"""Evaluation suites run by ``centinela evaluate``."""
