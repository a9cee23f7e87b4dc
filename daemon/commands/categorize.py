"""``noduled categorize``: the category and management of one case (JSON in, JSON out).

Reads a ``noduled.case/2`` (or ``/1``) file (or ``-`` for standard input), prints the
``noduled.assessment/1`` JSON on standard output and exits 0; a case that fails
validation prints the error (naming the field) on standard error and exits 2.
``--explain`` prints the reasoning, nodule by nodule, in plain text instead.
``--protocol nlcsp`` (default) or ``lung-rads-2022`` chooses the engine; both read the same case.
"""

from __future__ import annotations

from pathlib import Path

import typer


def register(app: typer.Typer) -> None:
    @app.command("categorize")
    def categorize(
        case_file: str = typer.Argument(..., metavar="CASE.json", help="Case JSON (noduled.case/1); '-' reads stdin."),
        explain: bool = typer.Option(False, "--explain", help="Print the reasoning in plain text for each nodule."),
        strict: bool = typer.Option(False, "--strict", help="Reject fields the case schema does not know."),
        protocol: str = typer.Option(
            "nlcsp",
            "--protocol",
            metavar="nlcsp|lung-rads-2022",
            help="The protocol engine: nlcsp (default) or lung-rads-2022.",
        ),
    ) -> None:
        """Assign the category, management and due date of a protocol (NLCSP or Lung-RADS v2022) to a case."""
        import json
        import sys
        from collections.abc import Callable
        from typing import Any

        from nlcsp.cases import CaseError

        parse_case: Callable[..., Any]
        assess: Callable[[Any], Any]
        to_json: Callable[[Any], dict[str, Any]]
        explain_text: Callable[[Any], str]
        if protocol == "nlcsp":
            from nlcsp.cases import assessment_to_json as to_json
            from nlcsp.cases import parse_case
            from nlcsp.categorize import assess
            from nlcsp.categorize import explain as explain_text
        elif protocol == "lung-rads-2022":
            from lungrads.cases import assessment_to_json as to_json
            from lungrads.cases import parse_case
            from lungrads.categorize import assess
            from lungrads.categorize import explain as explain_text
        else:
            typer.echo(f"noduled categorize: --protocol must be nlcsp or lung-rads-2022 (got {protocol!r})", err=True)
            raise typer.Exit(code=2)

        try:
            text = sys.stdin.read() if case_file == "-" else Path(case_file).read_text(encoding="utf-8")
        except OSError as exc:
            typer.echo(f"noduled categorize: cannot read {case_file}: {exc.strerror or exc}", err=True)
            raise typer.Exit(code=2) from None
        try:
            obj = json.loads(text)
        except json.JSONDecodeError as exc:
            typer.echo(f"noduled categorize: {case_file} is not valid JSON: {exc}", err=True)
            raise typer.Exit(code=2) from None
        try:
            case = parse_case(obj, strict=strict)
            assessment = assess(case)
        except CaseError as exc:
            typer.echo(f"noduled categorize: invalid case: {exc}", err=True)
            raise typer.Exit(code=2) from None
        for warning in case.warnings:
            typer.echo(f"noduled categorize: warning: {warning}", err=True)
        if explain:
            typer.echo(explain_text(assessment), nl=False)
        else:
            typer.echo(json.dumps(to_json(assessment), indent=2))
