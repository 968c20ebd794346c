"""Labels for the device fleet: status, verdicts, slots, enrollment codes and commands."""

LABELS: dict[str, dict[str, str]] = {}
