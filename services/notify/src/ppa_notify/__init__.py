"""Notify: e-mail templates, sending (SMTP or Maildir) and the delivery log."""
