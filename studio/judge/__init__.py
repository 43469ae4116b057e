"""Is the style learned? Meters that judge a style adapter from images it draws.

- :mod:`features`: content-free style statistics (colour, contrast, texture from the base
  model's own VAE encoder) and small-image content vectors;
- :mod:`meters`: the style, copy and leak meters over those features;
- :mod:`scorecard`: one row per checkpoint, the recommended checkpoint and the plateau rule;
- :mod:`prompts`: judge prompts from a dataset's own captions (held-out first), trigger removed for leak;
- :mod:`session`: draws the images (base once, adapter each round) and turns them into a row.
"""
