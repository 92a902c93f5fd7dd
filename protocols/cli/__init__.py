"""The ``rrambench`` command: one module per subcommand."""
