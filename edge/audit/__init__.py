"""Accountability: the tamper-evident audit log, its verification and exports, the oversight report
and retention of alert crops (docs/audit-format.md)."""
