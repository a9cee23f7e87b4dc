"""Retention (daemon.storage.retention): CT images of reported, delivered studies go; everything else stays.

Unit tests on SQLite and a temporary archive with an injected clock and disk usage; the last test fills
a real, small filesystem (tmpfs mounted by the test, as root) over a simulated week of receiving
through the real Storage SCP.
"""

from __future__ import annotations

import datetime as dt
import io
import json
import os
import shutil
import subprocess
from collections import namedtuple
from pathlib import Path

import pytest
from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.uid import generate_uid
from sqlalchemy import insert, select
from typer.testing import CliRunner

from daemon.settings import Destination
from daemon.storage import retention
from daemon.storage.archive import Archive
from daemon.storage.db import open_index
from daemon.storage.queries import priors_in_index, study_files
from daemon.storage.schema import analyses, instances, outbox
from daemon.workflow.outbox import Outbox
from dicom_sr.report import build_report
from dicom_sr.seg import build_segmentation
from tests.dicom_sr_support import make_assessment, make_ct_series
from tests.support.ct_series import write_ct_series
from tests.support.servers import free_port
from tests.test_delivery import FakeFreePACS

T0 = dt.datetime(2026, 6, 1, 8, 0, tzinfo=dt.UTC)
DAY = dt.timedelta(days=1)
Usage = namedtuple("Usage", "total used free")


@pytest.fixture(scope="module")
def template() -> tuple[Dataset, Dataset]:
    ct = make_ct_series()
    assessment = make_assessment(ct)
    seg = build_segmentation(assessment.findings, ct)
    return seg, build_report(assessment, ct, seg=seg)


_ENCODED: dict[int, bytes] = {}


def _encoded(ds: Dataset) -> bytes:
    if id(ds) not in _ENCODED:
        buf = io.BytesIO()
        ds.save_as(buf, enforce_file_format=True)
        _ENCODED[id(ds)] = buf.getvalue()
    return _ENCODED[id(ds)]


def _store(archive: Archive, ds: Dataset) -> tuple[str, str, str]:
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    r = archive.store(buf.getvalue())
    return r.sop_instance_uid, r.study_uid, archive.relative_path(r.study_uid, r.series_uid, r.sop_instance_uid)


def receive(archive: Archive, src: Path, n: int = 4, seed: int = 0, rows: int = 32) -> tuple[str, list[Path]]:
    """A small CT study stored the way the SCP stores it; (study UID, archived files)."""
    paths = []
    for p in write_ct_series(src, n, rows=rows, cols=rows, seed=seed):
        r = archive.store(p.read_bytes(), calling_ae="PACS")
        paths.append(r.path)
    return dcmread(paths[0], stop_before_pixels=True).StudyInstanceUID, paths


def report(
    engine,
    archive: Archive,
    template: tuple[Dataset, Dataset],
    study_uid: str,
    at: dt.datetime,  # type: ignore[no-untyped-def]
    *,
    outbox_state: str | None = "delivered",
) -> list[Path]:
    """noduled's SR and SEG of the study (copies of real ones), analysis done at ``at``, their outbox rows."""
    files = []
    for original in template:
        ds = dcmread(io.BytesIO(_encoded(original)))  # sequences stay raw: cheap to write again
        ds.StudyInstanceUID = study_uid
        ds.SeriesInstanceUID = generate_uid()
        ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
        sop, study, rel = _store(archive, ds)
        files.append(archive.path_of(rel))
        if outbox_state is not None:
            with engine.begin() as conn:
                conn.execute(
                    insert(outbox).values(
                        sop_instance_uid=sop,
                        study_uid=study,
                        path=rel,
                        destination="PACS@127.0.0.1:104",
                        state=outbox_state,
                        attempts=1,
                        created_at=at,
                        next_attempt_at=at,
                        delivered_at=at if outbox_state == "delivered" else None,
                    )
                )
    with engine.begin() as conn:
        conn.execute(
            insert(analyses).values(study_uid=study_uid, state="done", attempts=1, finished_at=at, updated_at=at)
        )
    return files


@pytest.fixture
def node(tmp_path: Path):  # type: ignore[no-untyped-def]
    engine = open_index(f"sqlite:///{tmp_path / 'var' / 'index.sqlite'}")
    yield engine, Archive(tmp_path / "var" / "archive", engine)
    engine.dispose()


def _purge(engine, archive: Archive, now: dt.datetime, usage=None, **kw):  # type: ignore[no-untyped-def]
    args = dict(retention_days=30.0, high_water_mark_percent=90.0, low_water_mark_percent=80.0)
    args.update(kw)
    return retention.purge(
        engine, archive.root, archive.root.parent, now=now, disk_usage=usage or (lambda _p: Usage(100, 10, 90)), **args
    )


def test_retention_deletes_only_the_ct_of_reported_and_delivered_studies(node, tmp_path, template) -> None:  # type: ignore[no-untyped-def]
    engine, archive = node
    a, a_ct = receive(archive, tmp_path / "a", seed=1)
    a_reports = report(engine, archive, template, a, T0)
    b, b_ct = receive(archive, tmp_path / "b", seed=2)
    report(engine, archive, template, b, T0, outbox_state="pending")  # not delivered yet
    c, c_ct = receive(archive, tmp_path / "c", seed=3)  # never reported (no seeds)
    d, d_ct = receive(archive, tmp_path / "d", seed=4)
    report(engine, archive, template, d, T0, outbox_state="expired")  # given up: never delivered
    e, e_ct = receive(archive, tmp_path / "e", seed=5)
    report(engine, archive, template, e, T0 + 2 * DAY)  # younger than the retention at day 31

    # day 29: nothing is old enough
    assert _purge(engine, archive, T0 + 29 * DAY).studies == []
    # day 31, dry run: says A, deletes nothing
    dry = _purge(engine, archive, T0 + 31 * DAY, dry_run=True)
    assert [(s.study_uid, s.reason, s.files) for s in dry.studies] == [(a, "retention", 4)]
    assert all(p.exists() for p in a_ct)
    # the real run
    a_bytes = sum(p.stat().st_size for p in a_ct)
    result = _purge(engine, archive, T0 + 31 * DAY)
    assert [s.study_uid for s in result.studies] == [a] and result.files_deleted == 4
    assert result.bytes_freed == a_bytes
    assert not any(p.exists() for p in a_ct) and not a_ct[0].parent.exists()
    assert all(p.exists() for p in a_reports)  # SR and SEG stay
    for kept in (b_ct, c_ct, d_ct, e_ct):
        assert all(p.exists() for p in kept)
    # the index keeps every row, marked; file readers skip them
    with engine.connect() as conn:
        marked = conn.execute(select(instances.c.purged_at).where(instances.c.path.like(f"{a}/%"))).scalars().all()
    assert len(marked) == 6 and sum(m is not None for m in marked) == 4
    assert study_files(engine, archive, a).ct_paths == []
    assert retention.archive_bytes(engine) == sum(p.stat().st_size for p in archive.root.rglob("*.dcm"))
    # nothing left to do for A; E's turn comes at its own day 30
    assert _purge(engine, archive, T0 + 31.5 * DAY).studies == []
    assert [s.study_uid for s in _purge(engine, archive, T0 + 32 * DAY).studies] == [e]


def test_high_water_mark_purges_the_oldest_reported_studies_until_below_the_low_mark(node, tmp_path, template) -> None:  # type: ignore[no-untyped-def]
    engine, archive = node
    uids = []
    for day in range(4):
        uid, _ = receive(archive, tmp_path / f"s{day}", n=8, seed=day, rows=128)
        report(engine, archive, template, uid, T0 + day * DAY)
        uids.append(uid)
    undelivered, _ = receive(archive, tmp_path / "u", n=8, seed=9, rows=128)  # the oldest, but not delivered
    report(engine, archive, template, undelivered, T0 - DAY, outbox_state="pending")
    initial = retention.archive_bytes(engine)
    total = int(initial / 0.9)  # the disk holds nothing else: 90 % full

    def usage(_p):  # type: ignore[no-untyped-def]
        used = retention.archive_bytes(engine)
        return Usage(total, used, total - used)

    result = _purge(
        engine, archive, T0 + 4 * DAY, usage, retention_days=30, high_water_mark_percent=85, low_water_mark_percent=70
    )
    # each study is ~17 % of the disk: two go (90 -> 56 %), the oldest delivered ones, by the disk rule
    assert [(s.study_uid, s.reason) for s in result.studies] == [(uids[0], "disk"), (uids[1], "disk")]
    assert usage(None).used / total * 100 <= 70
    assert undelivered not in [s.study_uid for s in result.studies]
    assert all(p.exists() for p in study_files(engine, archive, undelivered).ct_paths)


def test_a_purged_prior_counts_as_missing_and_comes_back_when_received_again(node, tmp_path, template) -> None:  # type: ignore[no-untyped-def]
    engine, archive = node
    src = tmp_path / "prior"
    uid, files = receive(archive, src, n=3, seed=7)
    report(engine, archive, template, uid, T0)
    before = dt.date(2026, 6, 2)

    def ct_series_count() -> int | None:
        (prior,) = priors_in_index(engine, patient_id="NODULED-TEST-1", issuer="", before=before)
        return next((s.n_instances for s in prior.series if s.modality == "CT"), None)

    assert ct_series_count() == 3
    _purge(engine, archive, T0 + 31 * DAY)
    assert ct_series_count() is None  # not held: the prior lookup fetches it from the PACS
    for p in sorted(src.glob("*.dcm")):  # the PACS sends it again (C-MOVE)
        r = archive.store(p.read_bytes(), calling_ae="PACS")
        assert not r.duplicate and r.path.exists()
    assert ct_series_count() == 3
    with engine.connect() as conn:
        assert (
            conn.execute(select(instances.c.purged_at).where(instances.c.path.like(f"{uid}/%"))).scalars().all()
            == [None] * 5
        )
    assert len(study_files(engine, archive, uid).ct_paths) == 3


def test_purge_command_dry_run_then_real(tmp_path, template) -> None:  # type: ignore[no-untyped-def]
    data_dir = tmp_path / "var"
    engine = open_index(f"sqlite:///{data_dir / 'index.sqlite'}")
    archive = Archive(data_dir / "archive", engine)
    uid, files = receive(archive, tmp_path / "a", seed=1)
    report(engine, archive, template, uid, dt.datetime.now(dt.UTC) - 40 * DAY)
    engine.dispose()
    config = tmp_path / "noduled.toml"
    config.write_text(
        f'[storage]\ndata_dir = "{data_dir}"\nhigh_water_mark_percent = 100\nlow_water_mark_percent = 100\n'
    )

    dry = CliRunner().invoke(
        __import__("daemon.cli", fromlist=["app"]).app, ["purge", "--dry-run", "--json", "-c", str(config)]
    )
    assert dry.exit_code == 0, dry.output
    out = json.loads(dry.output)
    assert out["dry_run"] and [s["study_uid"] for s in out["studies"]] == [uid] and out["files_deleted"] == 0
    assert all(p.exists() for p in files)
    real = CliRunner().invoke(__import__("daemon.cli", fromlist=["app"]).app, ["purge", "-c", str(config)])
    assert real.exit_code == 0 and "purged 1 studies, 4 CT files" in real.output and uid in real.output
    assert not any(p.exists() for p in files)


# --------------------------------------------------------- a real small disk


@pytest.fixture
def small_fs(tmp_path: Path):  # type: ignore[no-untyped-def]
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("needs root to mount a size-limited tmpfs (the CI runs as root)")
    mnt = tmp_path / "fs"
    mnt.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=12m", "tmpfs", str(mnt)], capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    yield mnt
    subprocess.run(["umount", "-l", str(mnt)], check=False)


def test_a_week_on_a_small_filesystem_keeps_receiving_and_every_report(small_fs, tmp_path, template) -> None:  # type: ignore[no-untyped-def]
    from pynetdicom import AE
    from pynetdicom.sop_class import CTImageStorage  # type: ignore[attr-defined]

    from daemon.network import fastpath
    from daemon.network.scp import StorageSCP
    from daemon.settings import SCPSettings

    engine = open_index(f"sqlite:///{small_fs / 'index.sqlite'}")
    archive = Archive(small_fs / "archive", engine, min_free_disk_mb=1)
    scp = StorageSCP(SCPSettings(ae_title="NODULED", port=free_port()), archive)
    scp.start()
    pacs = FakeFreePACS().start()
    now = [T0]
    box = Outbox(
        engine, archive.root, [Destination(ae_title="PACS", host="127.0.0.1", port=pacs.port)], clock=lambda: now[0]
    )
    down = Outbox(
        engine, archive.root, [Destination(ae_title="PACS", host="127.0.0.1", port=free_port())], clock=lambda: now[0]
    )
    sender = AE("MODALITY")
    sender.add_requested_context(CTImageStorage)
    statuses: list[int] = []
    reports: list[Path] = []
    unreported: list[str] = []
    undelivered: list[str] = []
    purged: list[str] = []
    used_percent = []
    try:
        for day in range(7):
            now[0] = T0 + day * DAY
            for k in range(3):
                src = tmp_path / f"d{day}s{k}"
                paths = write_ct_series(src, 10, rows=180, cols=180, seed=day * 10 + k)  # ~0.65 MB a study
                # the guard: stock pynetdicom's requestor reactor can take a C-STORE-RSP off the
                # queue under load (tests/test_reactor_race.py), a 30 s hang of this sender
                assoc = sender.associate(
                    "127.0.0.1", scp.settings.port, ae_title="NODULED", evt_handlers=list(fastpath.REQUESTOR_HANDLERS)
                )
                assert assoc.is_established
                statuses += [int(assoc.send_c_store(p).Status) for p in paths]
                assoc.release()
                study_uid = str(dcmread(paths[0], stop_before_pixels=True).StudyInstanceUID)
                shutil.rmtree(src)
                if k == 0 and day == 1:
                    unreported.append(study_uid)  # no seeds ever came
                    continue
                files = report(engine, archive, template, study_uid, now[0], outbox_state=None)
                reports += files
                target = down if (k == 1 and day == 2) else box  # one study's destination stays down
                for f in files:
                    ds = dcmread(f, stop_before_pixels=True)
                    target.enqueue(str(ds.SOPInstanceUID), study_uid, str(f.relative_to(archive.root)))
                if target is down:
                    undelivered.append(study_uid)
            box.deliver_due()
            down.deliver_due()
            result = retention.purge(
                engine,
                archive.root,
                small_fs,
                now=now[0],
                retention_days=3,
                high_water_mark_percent=70,
                low_water_mark_percent=55,
            )
            purged += [s.study_uid for s in result.studies]
            used_percent.append(retention.disk_used_percent(small_fs))
        assert statuses and set(statuses) == {0x0000}, "an instance was refused: the disk filled"
        assert len(statuses) == 7 * 3 * 10
        assert all(p.exists() for p in reports)  # every SR and SEG
        assert purged and not set(purged) & set(unreported + undelivered)
        for uid in unreported + undelivered:
            assert len(study_files(engine, archive, uid).ct_paths) == 10
            assert all(p.exists() for p in study_files(engine, archive, uid).ct_paths)
        with engine.connect() as conn:
            assert conn.execute(select(analyses.c.study_uid)).scalars().all().__len__() == 7 * 3 - 1
            # every instance received is still in the index (purged ones marked)
            assert len(conn.execute(select(instances.c.id)).all()) == 7 * 3 * 10 + len(reports)
        assert max(used_percent) < 95, used_percent
        print(
            f"\nfilesystem use at the end of each day (%): {[round(u, 1) for u in used_percent]}; "
            f"{len(purged)} of {7 * 3 - 2} purgeable studies purged, {len(statuses)} instances all stored"
        )
        # without purging, this week's images alone would not have fit
        assert 7 * 3 * 10 * 180 * 180 * 2 > shutil.disk_usage(small_fs).total
    finally:
        scp.stop()
        pacs.stop()
        engine.dispose()


def test_the_node_purges_on_its_tick_and_counts_it_in_the_metrics(tmp_path, template) -> None:  # type: ignore[no-untyped-def]
    from daemon.node import Node
    from daemon.ops.metrics import REGISTRY
    from daemon.settings import Settings

    settings = Settings(storage={"data_dir": str(tmp_path / "var"), "min_free_disk_mb": 0}, http={"enabled": False})
    node = Node(settings)
    try:
        uid, files = receive(node.archive, tmp_path / "a", seed=1)
        report(node.engine, node.archive, template, uid, dt.datetime.now(dt.UTC) - 31 * DAY)
        before = REGISTRY.get_sample_value("noduled_studies_purged_total") or 0.0
        size = sum(p.stat().st_size for p in files)
        bytes_before = REGISTRY.get_sample_value("noduled_purged_bytes_total") or 0.0
        node.purge_tick()
        assert not any(p.exists() for p in files)
        assert REGISTRY.get_sample_value("noduled_studies_purged_total") == before + 1
        assert REGISTRY.get_sample_value("noduled_purged_bytes_total") == bytes_before + size
    finally:
        node.engine.dispose()
