"""labor: LabOR (Labeling Only if Required, ICCV 2021) as a command-line toolkit."""

__version__ = "0.3.0"


def main(argv=None) -> None:
    """The `labor` executable: labor_cli.cli.main, loaded here so that a Ctrl-C while its modules
    load (typer, rich: a fraction of a second) is one line and exit 130 too, not a traceback."""
    from labor_cli.resume import interrupts_exit  # the standard library's modules alone: at once

    with interrupts_exit():
        from labor_cli.cli import main as run
    run(argv)
