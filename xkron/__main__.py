"""``python -m xkron``: the same command-line interface as the ``xkron`` script."""

from xkron.cli.app import main

if __name__ == "__main__":
    main(prog_name="xkron")
