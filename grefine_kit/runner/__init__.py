"""The runners behind ``grefine refine`` and ``grefine score``: inputs, work units, results."""
