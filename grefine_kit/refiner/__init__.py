"""The Refiner: its roles table, per-image state, blocks, options, strength rules and stage runs."""
