"""Parity validators: pure-numpy metrics and verdicts comparing a converted model with its original."""
