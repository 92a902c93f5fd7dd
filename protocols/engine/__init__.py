"""The run engine: protocols, parameters, datasets, the state machine, the run-file writer."""
