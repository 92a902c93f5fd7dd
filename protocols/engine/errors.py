"""Errors of the protocol layer that the CLI reports to the user."""


class UsageError(Exception):
    """Bad input from the user: reported as one line on stderr, exit code 2."""
