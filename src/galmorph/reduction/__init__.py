"""The reduction stage (workflow/rules/reduction.smk): from image shards to features.

* :mod:`~galmorph.reduction.pipeline`: the fitted reduction (``reducer.pkl``,
  ``scaler.pkl``, ``pipeline.skops``) and the reduced splits;
* :mod:`~galmorph.reduction.pca`: ``FastIncrementalPCA``;
* :mod:`~galmorph.reduction.alignment`: recentre, align, mask, normalise, stretch;
* :mod:`~galmorph.reduction.descriptors`: rotation-invariant descriptors;
* :mod:`~galmorph.reduction.morphometry`: measured morphology (winding,
  concentration, asymmetry ...), shared with the CNN's measures input.
"""
