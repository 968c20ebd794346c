"""Every query of the hub, behind one interface (`sql.Tx` and `sql.Reader`), one module per
aggregate: accounts (users, sessions, lockouts), communes, devices, media, bulletins (with
their history and the communes' running order), manifests (who a bulletin reaches, manifest
versions, what a manifest holds), reports (proof of play, health, refused reports, the
monthly report's reads), audit, nodes (hub nodes on one database) and liveness (the probe).

Handlers (the JSON API and the console) call these functions with plain values and get typed
values back; they hold no SQL (tests/test_layers.py checks). They run on either backend:
SQLite (`hub.db`: the connection, the migrations of both, the damage checks) or PostgreSQL
(`postgres`, asyncpg); what the two spell differently comes from `sql.Dialect`.
"""
