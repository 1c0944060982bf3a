"""``python -m grefine_kit.cli``."""

from grefine_kit.cli import main

main()
