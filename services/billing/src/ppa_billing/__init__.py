"""Billing: PPA customers, monthly invoices and invoice documents."""
