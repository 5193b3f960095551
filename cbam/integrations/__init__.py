"""Using our attention with other projects' models: :func:`~cbam.integrations.attach.attach` (torchvision
and timm CNNs) and :mod:`cbam.integrations.timm` (our models in timm's registry; needs the ``timm`` extra).

Import the submodules directly; this package imports nothing itself, so ``import cbam`` stays lean.
"""
