"""Mask combiners: quality maps in, repaint mask out (docs/design.md 6.4, paper eq. 9 ``Bi(1 - P + A)``).

Conventions: quality maps are 1 = good; the deficiency ``D`` is 1 = bad; masks are 1 = repaint.
Our reading of the paper's ``Bi(1 − P + A)``: ``D = (1 − P) + A_def`` where ``A_def = 1 − A`` is
the alignment-defect map (the AQ-Map returned to users is ``A``, 1 = good). ``D`` lies in [0, 2].

Every combiner returns a :class:`~grefine_kit.types.Mask` at the image size:

- ``binary``: the pixels that may change (1 = repaint). It is what the inpainting pipeline gets,
  and outside it the refiner pastes the original pixels back exactly.
- ``soft``: the blend weight used for that paste-back; 0 everywhere outside ``binary``, 1 on the
  core deficient pixels, ramping in between so the repainted region blends into its surroundings.

Modules: :mod:`.base` (the protocol, shared helpers), :mod:`.g_refine` (the paper's mask and its
ablations), :mod:`.soft` (soft deficiency). Import the module you need; this package imports nothing.
"""
