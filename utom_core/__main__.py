"""``python -m utom_core``: the ``utom`` command, also as torchrun starts it
(``torchrun --nproc-per-node 4 -m utom_core train …``)."""

from utom_core.cli import main

if __name__ == "__main__":
    main()
