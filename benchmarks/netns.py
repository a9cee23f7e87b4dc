"""Run a benchmark inside a private network namespace (loopback only) when possible.

Servers started by the benchmarks (noduled, storescp, Orthanc) then cannot be
reached from outside this machine, whatever address they bind.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys


def reexec_in_private_network() -> None:
    if os.environ.get("NODULED_PRIVATE_NETNS") == "1" or os.geteuid() != 0 or shutil.which("unshare") is None:
        return
    if subprocess.run(["unshare", "--net", "true"], capture_output=True).returncode != 0:
        return
    env = dict(os.environ, NODULED_PRIVATE_NETNS="1")
    cmd = [
        "unshare",
        "--net",
        "--",
        "bash",
        "-c",
        'ip link set lo up && exec "$0" "$@"',
        sys.executable,
        *sys.orig_argv[1:],
    ]
    os.execvpe("unshare", cmd, env)
