"""Evaluation: evaluators (``base``, ``metrics``), evaluating prediction files (``streamed``)
and the figures reports show (``figures``)."""
