"""Labels for communes, users, audit and reports."""

LABELS: dict[str, dict[str, str]] = {}
