"""``noduled status`` and ``noduled worker --help`` as an operator reads them."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

from typer.testing import CliRunner

from daemon.cli import app
from daemon.settings import Destination
from daemon.storage.db import open_index
from daemon.workflow.outbox import Outbox


def _plain(text: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"[│╭╮╰╯─]", " ", text))


def test_worker_help_names_the_queue_workers_setting() -> None:
    result = CliRunner().invoke(app, ["worker", "--help"], terminal_width=200)
    assert result.exit_code == 0
    assert "(default: [queue] workers)" in _plain(result.output)


def test_status_prints_delivery_errors_as_sentences_not_dicts(tmp_path: Path) -> None:
    data_dir = tmp_path / "var"
    config = tmp_path / "noduled.toml"
    config.write_text(f'[storage]\ndata_dir = "{data_dir}"\n')
    engine = open_index(f"sqlite:///{data_dir / 'index.sqlite'}")
    t0 = dt.datetime(2026, 6, 1, 8, 0, tzinfo=dt.UTC)
    box = Outbox(
        engine, data_dir / "archive", [Destination(ae_title="PACS", host="127.0.0.1", port=1)], clock=lambda: t0
    )
    box.enqueue("1.2.3.4", "1.2.3", "1.2.3/1.2.3.5/1.2.3.4.dcm")
    box.deliver_due()  # the file is missing: expired with the reason
    engine.dispose()

    # rich folds a word longer than the console (the temporary path is, under pytest-xdist): a wide console
    result = CliRunner().invoke(app, ["status", "--config", str(config)], terminal_width=250, env={"COLUMNS": "250"})
    assert result.exit_code == 0, result.output
    text = " ".join(x.strip() for x in result.output[result.output.index("last error") :].splitlines())  # rich wraps
    assert "{" not in text and "'" not in text
    assert text.strip() == (
        "last error: PACS@127.0.0.1:1, study 1.2.3: file 1.2.3/1.2.3.5/1.2.3.4.dcm is missing from the archive "
        f"{data_dir / 'archive'} (attempt 1, expired)"
    )
