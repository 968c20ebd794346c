"""Loa hub: the provincial source-information hub (HTTTN) that signs and pushes bulletins."""
