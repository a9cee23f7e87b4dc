"""The ``noduled`` command.

Each sub-command lives in its own module under :mod:`daemon.commands` and
exposes ``register(app)``; heavy libraries are imported inside the command
functions so that ``noduled --help`` stays fast.
"""

from __future__ import annotations

import typer

from daemon.commands import (
    analyze,
    audit,
    categorize,
    export,
    measure,
    outcomes,
    participants,
    phantom,
    purge,
    report,
    serve,
    status,
    verify,
    worker,
)

app = typer.Typer(
    name="noduled",
    help="DICOM node for lung cancer screening (NLCSP): nodule volumetry, prior comparison, TID 1500 SR.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

for _module in (
    serve,
    worker,
    status,
    verify,
    purge,
    analyze,
    measure,
    categorize,
    report,
    phantom,
    participants,
    outcomes,
    export,
    audit,
):
    _module.register(app)


def main() -> None:  # pragma: no cover - console entry point
    app()


if __name__ == "__main__":  # pragma: no cover
    main()
