"""Built-in callbacks (filled in by the callbacks module's issue)."""
