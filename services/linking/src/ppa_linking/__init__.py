"""Linking: owner-approved links between owners and agencies, and audited proxy login."""
