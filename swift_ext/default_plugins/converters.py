"""Built-in converters (filled in by the converters module's issue)."""
