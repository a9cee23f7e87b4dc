"""``noduled phantom``: write synthetic LDCT studies with exact ground truth (test_images)."""

from __future__ import annotations

from pathlib import Path

import typer


def register(app: typer.Typer) -> None:
    @app.command("phantom")
    def phantom(
        case: str = typer.Argument(None, help="case name (see --list)"),
        out: Path = typer.Option(None, "--out", help="output directory (one sub-folder per study + truth.json)"),
        size: str = typer.Option("small", "--size", help="full (512x512x300) or small (256x256x96 crop)"),
        seed: int = typer.Option(0, "--seed", help="random seed: same seed, same bytes"),
        noise_sd_hu: float = typer.Option(None, "--noise-sd", help="image noise SD in HU (default 40)"),
        list_: bool = typer.Option(False, "--list", help="list the cases and exit"),
    ) -> None:
        """Generate a synthetic screening case: CT series, seed SR + GSPS + JSON per study, and truth.json."""
        from test_images import generate_case, list_cases, write_study
        from test_images.truthfile import write_truth

        if list_:
            for name, description in list_cases():
                typer.echo(f"{name:14s} {description}")
            return
        if case is None or out is None:
            typer.echo("noduled phantom: give a CASE and --out DIR (or --list)", err=True)
            raise typer.Exit(code=2)
        names = [n for n, _ in list_cases()]
        if case not in names:
            typer.echo(f"noduled phantom: unknown case {case!r}; known cases: {', '.join(names)}", err=True)
            raise typer.Exit(code=2)
        if size not in ("full", "small"):
            typer.echo(f"noduled phantom: --size must be 'full' or 'small', not {size!r}", err=True)
            raise typer.Exit(code=2)
        studies = generate_case(case, size=size, seed=seed, noise_sd_hu=noise_sd_hu)
        out.mkdir(parents=True, exist_ok=True)
        written = []
        for study in studies:
            sub = out / f"study{study.study_index + 1}_{study.study_date:%Y%m%d}"
            paths = write_study(study, sub)
            written.append((study, sub, paths))
            typer.echo(f"{sub}: {len(paths['ct'])} CT slices, {len(study.nodules)} nodules, SR + GSPS + seeds.json")
        truth_path = write_truth(case, seed, size, [(s, sub) for s, sub, _ in written], out / "truth.json")
        typer.echo(f"truth: {truth_path}")
