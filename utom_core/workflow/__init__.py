"""``utom run``: the user's data (``userdata``), the job (``run``) and its ``report``."""
