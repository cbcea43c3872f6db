"""Training: ``train()`` runs a ``Trainer`` in a run directory; nothing outside this package
imports it except what trains (``utom train``, ``utom run``, the bench)."""
