"""Runtime shared by every service: settings, logging, ports and their embedded/distributed adapters."""
