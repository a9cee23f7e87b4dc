"""``noduled measure``: segment and measure the nodule at each LPS seed of a CT series or volume file.

The production call (:func:`segmentation.production.measure_at_seed`, lung mask included): the same
numbers as ``noduled analyze`` and the daemon."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer


def _parse_seed(text: str) -> tuple[float, float, float]:
    parts = [p for p in text.replace(" ", "").split(",") if p]
    if len(parts) != 3:
        raise typer.BadParameter(f"seed {text!r} must be X,Y,Z in LPS millimetres")
    try:
        return tuple(float(p) for p in parts)  # type: ignore[return-value]
    except ValueError as exc:
        raise typer.BadParameter(f"seed {text!r} must be three numbers X,Y,Z") from exc


def measurement_to_json(m: Any) -> dict[str, Any]:
    """The DESIGN §3 NoduleMeasurement fields as JSON (the mask as its bounding box only)."""
    q = m.quality
    return {
        "volume_mm3": m.volume_mm3,  # the SR's volume: radiologists' outline convention
        "partial_volume_mm3": m.partial_volume_mm3,  # the physical (partial-volume) estimate
        "mean_diameter_mm": m.mean_diameter_mm,
        "long_axis_mm": m.long_axis_mm,
        "short_axis_mm": m.short_axis_mm,
        "measurement_plane": m.measurement_plane,
        "long_axis_endpoints_lps_mm": [list(p) for p in m.long_axis_endpoints_lps_mm],
        "short_axis_endpoints_lps_mm": [list(p) for p in m.short_axis_endpoints_lps_mm],
        "max_axial_diameter_mm": m.max_axial_diameter_mm,
        "mean_hu": m.mean_hu,
        "hu_percentiles": {str(k): v for k, v in m.hu_percentiles.items()},
        "solid_volume_mm3": m.solid_volume_mm3,
        "solid_mean_diameter_mm": m.solid_mean_diameter_mm,
        "centroid_lps_mm": list(m.centroid_lps_mm),
        "mask": None
        if m.mask is None
        else {"origin_index_zyx": list(m.mask.origin_index_zyx), "shape_zyx": list(m.mask.shape_zyx)},
        "quality": {
            "touches_roi_edge": q.touches_roi_edge,
            "cut_by_field_of_view": q.cut_by_field_of_view,
            "juxtapleural_cut_applied": q.juxtapleural_cut_applied,
            "vessel_detachment_applied": q.vessel_detachment_applied,
            "possible_leak": q.possible_leak,
            "too_small_for_volumetry": q.too_small_for_volumetry,
            "volumetry_unreliable": q.volumetry_unreliable,
            "reasons": list(q.reasons),
        },
    }


def load_volume(path: Path):  # type: ignore[no-untyped-def]
    """(image in HU, name) from a DICOM series folder or any volume file SimpleITK reads (NIfTI, NRRD, MHD)."""
    import SimpleITK as sitk

    from segmentation.io import load_series

    if path.is_dir():
        series = load_series(path)
        return series.image, f"series {series.series_uid}"
    try:
        image = sitk.ReadImage(str(path))
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()[-1] if str(exc).strip() else "unreadable"
        raise ValueError(f"{path.name}: not a volume SimpleITK can read ({first})") from None
    if image.GetDimension() != 3 or image.GetNumberOfComponentsPerPixel() != 1:
        raise ValueError(
            f"{path.name}: a 3-D single-channel volume is needed, got {image.GetDimension()}-D with "
            f"{image.GetNumberOfComponentsPerPixel()} components"
        )
    return sitk.Cast(image, sitk.sitkFloat32), f"volume {path.name}"


def register(app: typer.Typer) -> None:
    @app.command("measure")
    def measure(
        source: Path = typer.Argument(
            ...,
            exists=True,
            help="folder with one CT series, or a volume file in HU (NIfTI, NRRD, MHD: anything SimpleITK reads)",
        ),
        seed: list[str] = typer.Option(..., "--seed", help="nodule seed X,Y,Z in LPS mm (repeatable)"),
        as_json: bool = typer.Option(False, "--json", help="print a JSON list instead of a table"),
        solid_threshold_hu: float = typer.Option(-300.0, help="solid component threshold (HU)"),
        mask_out: Path | None = typer.Option(
            None,
            "--mask-out",
            help="write the binary nodule mask (0/1, every seed's nodule) on the input grid to this file "
            "(.nii.gz, .nrrd, ...): the outline whose volume is reported (what the SEG shows)",
        ),
        half_contrast: bool = typer.Option(
            False,
            "--half-contrast-mask",
            help="with --mask-out: write the 50 %-contrast mask instead (the core of the partial-volume "
            "estimate partial_volume_mm3, about one pixel inside the reported outline)",
        ),
    ) -> None:
        """Segment and measure the nodule at each seed (volume, axes, HU, solid component)."""
        import numpy as np
        import SimpleITK as sitk

        from segmentation.characterize import characterize
        from segmentation.production import measure_at_seed, series_lung_mask
        from segmentation.types import NoNoduleAtSeed, SeriesError

        seeds = [_parse_seed(s) for s in seed]
        try:
            image, title = load_volume(source)
        except (SeriesError, ValueError) as exc:
            typer.echo(f"noduled measure: {exc}", err=True)
            raise typer.Exit(code=1) from None
        lungs = series_lung_mask(image)
        rows = []
        union = np.zeros(sitk.GetArrayViewFromImage(image).shape, dtype=np.uint8)
        for s in seeds:
            row: dict[str, Any] = {"seed": list(s)}
            try:
                m = measure_at_seed(image, s, lung_mask=lungs, solid_threshold_hu=solid_threshold_hu)
                row.update(measurement_to_json(m))
                c = characterize(image, m, lung_mask=lungs)
                row["composition"] = c.composition.value if c.composition else None
                row["error"] = None
                if m.mask is not None:
                    union[m.mask.box] |= m.mask.mask if half_contrast else m.mask.reported
            except NoNoduleAtSeed as exc:
                row["error"] = str(exc)
            rows.append(row)
        if mask_out is not None:
            out = sitk.GetImageFromArray(union)
            out.CopyInformation(image)
            try:
                sitk.WriteImage(out, str(mask_out), useCompression=True)
            except RuntimeError as exc:
                typer.echo(f"noduled measure: cannot write the mask to {mask_out}: {str(exc).strip()}", err=True)
                raise typer.Exit(code=1) from None
        if as_json:
            typer.echo(json.dumps(rows, indent=1))
            return
        from rich.console import Console
        from rich.table import Table

        table = Table(title=title)
        for col in (
            "seed (LPS mm)",
            "volume mm³",
            "mean Ø mm",
            "long × short mm",
            "plane",
            "max axial mm",
            "mean HU",
            "solid mm³",
            "composition",
            "flags / error",
        ):
            table.add_column(col)
        for r in rows:
            seed_txt = "{:.1f}, {:.1f}, {:.1f}".format(*r["seed"])
            if r["error"]:
                table.add_row(seed_txt, *[""] * 8, r["error"])
                continue
            table.add_row(
                seed_txt,
                f"{r['volume_mm3']:.0f}",
                f"{r['mean_diameter_mm']:.1f}",
                f"{r['long_axis_mm']:.1f} × {r['short_axis_mm']:.1f}",
                r["measurement_plane"],
                f"{r['max_axial_diameter_mm']:.1f}",
                f"{r['mean_hu']:.0f}",
                f"{r['solid_volume_mm3']:.0f}" if r["solid_volume_mm3"] is not None else "",
                r.get("composition") or "",
                "; ".join(r["quality"]["reasons"]) or "ok",
            )
        Console().print(table)
