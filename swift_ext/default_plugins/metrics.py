"""Built-in metrics (filled in by the metrics module's issue)."""
