"""Labels for bulletins: create, preview, detail, history and the review queue."""

LABELS: dict[str, dict[str, str]] = {}
