"""Metering domain rules: reading validation and daily usage derivation. Pure, no I/O, no framework.

- `readings`: validation of one device batch into frozen `Reading`s, duplicates and rejections.
- `daily`: per JST day generation / sold / usage / import / battery from all readings of a device,
  order-independent; which days a late reading touches; which days changed between derivations.
"""
