"""What the node holds: studies, their series and instance counts (for ``noduled status``)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine, case, func, select

from daemon.storage.schema import analyses, assessments, instances, series, studies


def archive_status(engine: Engine) -> dict[str, Any]:
    """Studies (newest first) with their series and instance counts, as plain data."""
    counts = (
        select(
            instances.c.series_pk,
            func.sum(case((instances.c.purged_at.is_(None), 1), else_=0)).label("n"),  # on disk
            func.sum(case((instances.c.purged_at.is_(None), instances.c.size_bytes), else_=0)).label("bytes"),
            func.sum(case((instances.c.purged_at.is_(None), 0), else_=1)).label("purged"),
            func.max(instances.c.received_at).label("last_received_at"),
        )
        .group_by(instances.c.series_pk)
        .subquery()
    )
    q = (
        select(
            studies.c.study_uid,
            studies.c.study_date,
            studies.c.accession_number,
            studies.c.description.label("study_description"),
            counts.c.last_received_at,
            series.c.series_uid,
            series.c.series_number,
            series.c.modality,
            series.c.description.label("series_description"),
            series.c.slice_thickness_mm,
            series.c.convolution_kernel,
            func.coalesce(counts.c.n, 0).label("instances"),
            func.coalesce(counts.c.bytes, 0).label("bytes"),
            func.coalesce(counts.c.purged, 0).label("purged"),
        )
        .select_from(
            studies.join(series, series.c.study_pk == studies.c.id).outerjoin(counts, counts.c.series_pk == series.c.id)
        )
        .order_by(studies.c.id.desc(), series.c.series_number, series.c.series_uid)
    )
    result: dict[str, dict[str, Any]] = {}
    with engine.connect() as conn:
        for row in conn.execute(q):
            study = result.setdefault(
                row.study_uid,
                {
                    "study_uid": row.study_uid,
                    "study_date": row.study_date.isoformat() if row.study_date else None,
                    "accession_number": row.accession_number,
                    "description": row.study_description,
                    "last_received_at": row.last_received_at.isoformat() if row.last_received_at else None,
                    "instances": 0,
                    "purged_instances": 0,  # files deleted by the retention policy (the index keeps them)
                    "series": [],
                },
            )
            study["instances"] += int(row.instances)
            study["purged_instances"] += int(row.purged)
            if row.last_received_at is not None:
                last = row.last_received_at.isoformat()
                study["last_received_at"] = max(study["last_received_at"] or last, last)
            study["series"].append(
                {
                    "series_uid": row.series_uid,
                    "series_number": row.series_number,
                    "modality": row.modality,
                    "description": row.series_description,
                    "slice_thickness_mm": row.slice_thickness_mm,
                    "convolution_kernel": row.convolution_kernel,
                    "instances": int(row.instances),
                    "bytes": int(row.bytes),
                }
            )
    for uid, analysis in analysis_status(engine).items():
        if uid in result:
            result[uid]["analysis"] = analysis
    late = late_ct_counts(engine)
    for uid, study in result.items():
        ct = sum(s["instances"] for s in study["series"] if s["modality"] == "CT")
        current = study.get("analysis")
        if current is None:
            if ct == 0:  # an SR-only study (seeds without images) is never analysed: say why
                study["analysis"] = {"state": "-", "reason": "no CT images in this study: nothing to analyse"}
            continue
        entry: dict[str, Any] = current
        n_late = late.get(uid, 0)
        if n_late and entry["state"] in ("done", "failed"):
            # late data: the report (or failure) is on a partial series; the study is analysed again once complete
            entry["partial"] = {"analysed_ct_images": ct - n_late, "ct_images": ct}
            entry["reason"] = (
                f"{'reported' if entry['state'] == 'done' else 'failed'} on {ct - n_late} of {ct} CT images; "
                f"{n_late} arrived later: analysing again when the study is complete"
            )
    studies_list = list(result.values())
    return {
        "studies": studies_list,
        "totals": {
            "studies": len(studies_list),
            "series": sum(len(s["series"]) for s in studies_list),
            "instances": sum(s["instances"] for s in studies_list),
        },
    }


def late_ct_counts(engine: Engine) -> dict[str, int]:
    """Per analysed study: the CT images received after its last analysis started (late data)."""
    from daemon.analysis.sop_classes import CT_IMAGE_STORAGE

    q = (
        select(studies.c.study_uid, func.count())
        .select_from(
            instances.join(series, series.c.id == instances.c.series_pk)
            .join(studies, studies.c.id == series.c.study_pk)
            .join(analyses, analyses.c.study_uid == studies.c.study_uid)
        )
        .where(
            instances.c.sop_class_uid == CT_IMAGE_STORAGE,
            analyses.c.started_at.is_not(None),
            instances.c.received_at > analyses.c.started_at,
        )
        .group_by(studies.c.study_uid)
    )
    with engine.connect() as conn:
        return {uid: int(n) for uid, n in conn.execute(q)}


def analysis_status(engine: Engine) -> dict[str, dict[str, Any]]:
    """Per study: where its analysis stands and, when reported, the category and the protocol it belongs to
    (``category`` as reported: NLCSP "4A" = Category 4 with the A flag; Lung-RADS "4AS" = 4A with S)."""
    q = select(
        analyses.c.study_uid,
        analyses.c.state,
        analyses.c.reason,
        analyses.c.report_sop_uid,
        analyses.c.finished_at,
        assessments.c.category,
        assessments.c.additional_findings,
        assessments.c.follow_up_months,
        assessments.c.due_date,
        assessments.c.protocol,
        assessments.c.protocol_version,
    ).select_from(analyses.outerjoin(assessments, assessments.c.report_sop_uid == analyses.c.report_sop_uid))
    out: dict[str, dict[str, Any]] = {}
    with engine.connect() as conn:
        for row in conn.execute(q):
            out[row.study_uid] = {
                "state": row.state,
                "reason": row.reason,
                "report_sop_uid": row.report_sop_uid,
                "finished_at": row.finished_at.isoformat() if row.finished_at else None,
                "category": (
                    row.category
                    + (("S" if row.protocol == "lung-rads-2022" else "A") if row.additional_findings else "")
                )
                if row.category
                else None,
                "protocol": row.protocol if row.category else None,
                "protocol_version": row.protocol_version if row.category else None,
                "follow_up_months": row.follow_up_months,
                "due_date": row.due_date.isoformat() if row.due_date else None,
            }
    return out


def describe_delivery_error(err: dict[str, Any]) -> str:
    """One outbox error of :func:`daemon.workflow.outbox.outbox_summary` as a line for people.

    ``"PACS@10.0.0.5:104, study 1.2.3: connection refused ... (attempt 3, pending, next try 2026-06-01 08:04:00 UTC)"``
    """
    state = err.get("state") or "?"
    when = ""
    if err.get("next_attempt_at"):
        when = (
            ", next try " + str(err["next_attempt_at"]).replace("T", " ").split(".")[0].removesuffix("+00:00") + " UTC"
        )
    attempts = int(err.get("attempts") or 0)
    return (
        f"{err.get('destination', '?')}, study {err.get('study_uid', '?')}: {err.get('last_error') or 'no error recorded'}"
        f" (attempt {attempts}, {state}{when})"
    )
