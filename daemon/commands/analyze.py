"""``noduled analyze``: the analysis pipeline offline, on folders (no PACS, no database)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer


def register(app: typer.Typer) -> None:
    @app.command("analyze")
    def analyze_cmd(
        series_dir: Path = typer.Argument(
            ..., help="Folder with the CT series (DICOM files; subfolders are read too)."
        ),
        seeds: list[Path] = typer.Option(
            ..., "--seeds", "-s", help="Seed object: TID 1500 SR, GSPS, or JSON of LPS points (repeatable)."
        ),
        out: Path = typer.Option(
            ...,
            "--out",
            "-o",
            help="Folder for report.dcm, seg.dcm, key_image_NN.dcm, report_pdf.dcm, assessment.json, case.json.",
        ),
        participant: Path | None = typer.Option(
            None,
            "--participant",
            help='JSON: {"age_years": 62, "sex": "F", "family_history_lung_cancer": false, "emphysema": false}',
        ),
        family_history: bool = typer.Option(
            False, "--family-history", help="Site default when --participant does not say."
        ),
        emphysema: bool = typer.Option(False, "--emphysema", help="Site default when --participant does not say."),
        protocol: str = typer.Option(
            "nlcsp",
            "--protocol",
            metavar="nlcsp|lung-rads-2022",
            help="The protocol of the report (as [analysis] protocol).",
        ),
        audit_protocol: str = typer.Option(
            "",
            "--audit-protocol",
            metavar="nlcsp|lung-rads-2022",
            help="Also compute this protocol (written to audit.json, not reported).",
        ),
    ) -> None:
        """Segment every seeded nodule, assess it with the protocol (NLCSP or Lung-RADS v2022), write the SR, SEG and assessment."""
        from pydicom import dcmread
        from pydicom.errors import InvalidDicomError
        from rich.console import Console
        from rich.table import Table

        from daemon.analysis.chain import AnalysisError, AnalysisInputs, SiteDefaults, analyze
        from dicom_sr.seeds import SeedError
        from segmentation.types import SeriesError

        console = Console(stderr=True)
        for option, value in (("--protocol", protocol), ("--audit-protocol", audit_protocol)):
            if value not in ("nlcsp", "lung-rads-2022") and not (option == "--audit-protocol" and value == ""):
                typer.echo(f"noduled analyze: {option} must be nlcsp or lung-rads-2022 (got {value!r})", err=True)
                raise typer.Exit(code=2)
        if not series_dir.is_dir():
            typer.echo(f"noduled analyze: {series_dir} is not a folder", err=True)
            raise typer.Exit(code=2)
        overrides = {}
        if participant is not None:
            try:
                overrides = json.loads(participant.read_text(encoding="utf-8"))
            except (OSError, ValueError) as exc:
                typer.echo(f"noduled analyze: cannot read participant file {participant}: {exc}", err=True)
                raise typer.Exit(code=2) from None
        with console.status("reading the CT series"):
            datasets = []
            for path in sorted(p for p in series_dir.rglob("*") if p.is_file()):
                try:
                    datasets.append(dcmread(path))
                except (InvalidDicomError, OSError):
                    continue
        seed_objects: list[Any] = []
        for path in seeds:
            if not path.is_file():
                typer.echo(f"noduled analyze: seed file {path} does not exist", err=True)
                raise typer.Exit(code=2)
            if path.suffix.lower() == ".json":
                seed_objects.append(json.loads(path.read_text(encoding="utf-8")))
            else:
                seed_objects.append(dcmread(path))
        inputs = AnalysisInputs(
            study_datasets=datasets,
            seed_objects=seed_objects,
            site=SiteDefaults(family_history, emphysema),
            participant_overrides=overrides,
            protocol=protocol,
            audit_protocol=audit_protocol,
        )
        try:
            with console.status("segmenting, measuring and assessing"):
                result = analyze(inputs)
        except (AnalysisError, SeriesError, SeedError) as exc:
            typer.echo(f"noduled analyze: {exc}", err=True)
            raise typer.Exit(code=1) from None
        out.mkdir(parents=True, exist_ok=True)
        result.report.save_as(out / "report.dcm", enforce_file_format=True)
        if result.seg is not None:
            result.seg.save_as(out / "seg.dcm", enforce_file_format=True)
        key_images = [d for d in result.extra_objects if d.SOPClassUID != "1.2.840.10008.5.1.4.1.1.104.1"]
        for k, image in enumerate(key_images, start=1):
            image.save_as(out / f"key_image_{k:02d}.dcm", enforce_file_format=True)
        for doc in result.extra_objects:
            if doc.SOPClassUID == "1.2.840.10008.5.1.4.1.1.104.1":
                doc.save_as(out / "report_pdf.dcm", enforce_file_format=True)
        (out / "assessment.json").write_text(json.dumps(result.assessment_json, indent=2) + "\n")
        (out / "case.json").write_text(json.dumps(result.case_json, indent=2) + "\n")

        a = result.assessment
        console_out = Console()
        if result.audit is not None:
            (out / "audit.json").write_text(json.dumps(result.audit.assessment_json, indent=2) + "\n")
        flag = ("S" if a.protocol == "lung-rads-2022" else "A") if a.additional_findings else ""
        name = "Lung-RADS " + a.protocol_version if a.protocol == "lung-rads-2022" else "NLCSP"
        table = Table(title=f"{name} Category {a.category}{flag}: {a.descriptor}")
        for col in ("nodule", "volume mm³", "mean Ø mm", "composition", "PanCan %", "category"):
            table.add_column(col, justify="left" if col in ("nodule", "composition") else "right")
        for f in a.findings:
            m = f.measurement
            table.add_row(
                f.tracking_id,
                f"{m.volume_mm3:.0f}" if m else "-",
                f"{m.mean_diameter_mm:.1f}" if m else "-",
                str(f.characterization.composition.value) if f.characterization.composition else "-",
                f"{f.pancan_risk_pct:.2f}" if f.pancan_risk_pct is not None else "-",
                f.category or "-",
            )
        console_out.print(table)
        for f in a.findings:
            console_out.print(f"{f.tracking_id}: {f.rule or f.error or ''}")
        console_out.print(f"management: {a.management}")
        console_out.print(
            "stages: " + ", ".join(f"{k} {v:.2f} s" for k, v in result.timings_s.items()) + f"; written to {out}"
        )
