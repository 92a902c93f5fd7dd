"""Characterization protocols: forming, I-V, write-verify, levels, retention, noise."""
