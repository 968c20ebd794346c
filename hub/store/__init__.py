"""Every query of the hub, behind one interface (`sql.Tx` and `sql.Reader`), one module per
aggregate: accounts, communes, devices, media, bulletins, manifests (who a bulletin reaches,
manifest versions), reports (proof of play, health, refused reports), audit.

Handlers (the JSON API and the console) call these functions with plain values and get typed
values back; they hold no SQL. The SQLite connection itself, its migrations and its damage
checks are `hub.db`; nothing here imports aiosqlite.
"""
