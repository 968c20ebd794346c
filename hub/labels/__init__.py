"""Console labels by area (vi/en side by side); hub.i18n merges them into one catalogue."""
