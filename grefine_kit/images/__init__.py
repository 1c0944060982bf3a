"""Images: safe loading (:mod:`.loading`), heatmap drawing (:mod:`.heatmaps`) and array
operations on masks and maps (:mod:`.ops`).

Import the module you need; this package itself imports nothing.
"""
