"""Notify: e-mail templates, sending and the delivery log."""
