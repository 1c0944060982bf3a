"""Regions: split the repaint mask into the defects stage 1 refines one at a time.

A ``regions`` part (registry kind ``regions``, hook ``register_regions``) follows
:class:`RegionDetector`: mask + maps + alignment report in, a list of :class:`Region` out. The
built-in ``components`` part takes the connected components of the mask, tags each with the
defect that made it (the perceptual map, or which alignment phrase), filters them (area ratio,
k largest), reshapes their masks (dilate/erode, blur) and pads a crop around each, the way
ADetailer and ComfyUI's detailer nodes do for detected faces and hands.

Conventions: boxes are ``(left, top, right, bottom)`` in image pixels, right/bottom exclusive;
region masks are crop-local (shape ``(crop height, crop width)``), 1 = repaint.

Modules: :mod:`.base` (:class:`~.base.Region`, the :class:`~.base.RegionDetector` protocol),
:mod:`.components` (the ``components`` detector, ``label_components``). Import the module you
need; this package imports nothing.
"""
