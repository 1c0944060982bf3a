"""What a part is (``PartBase``), the registry of part kinds, the plugin hooks, the built-in parts."""
