"""`python -m ginr_cli ...` runs the `ginr` command (also under `torchrun -m ginr_cli train ...`)."""

from ginr_cli.cli.app import main

main()
