"""The `ppa` command: composition root that wires every service into processes."""
