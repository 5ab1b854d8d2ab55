"""Built-in schedules (filled in by the schedules module's issue)."""
