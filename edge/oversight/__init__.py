"""The force's oversight service: every box's audit log in one verified store (docs/oversight-service.md)."""
