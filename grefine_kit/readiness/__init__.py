"""Is this machine ready for a recipe: what is missing (preflight) and fetching weights."""
