"""Pure rules of the hub's domain: plain values in, plain values (or a refusal) out; no
database, no clock, no HTTP."""
