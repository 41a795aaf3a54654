"""Identity: agency and owner accounts, credentials and sessions."""
