"""Link and proxy-login rules: pure functions and frozen models, no I/O."""
