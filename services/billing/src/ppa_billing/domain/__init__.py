"""Billing domain rules: customers, billing months and invoice arithmetic. Pure, no I/O, no framework.

- `customer`: validation of PPA customers, the frozen `Customer`, auth-code generation.
- `billing_month`: 利用月 `YYYY/MM`, its period under the closing-day setting, invoice numbers.
- `invoice`: Decimal invoice arithmetic, rounding modes, 内消費税.
"""
