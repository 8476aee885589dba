"""Only one DuckDB writer: a second build fails fast instead of waiting or corrupting."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from warehouse.writer_lock import WriterBusyError, exclusive_writer


def test_second_writer_in_another_process_is_refused(tmp_path: Path) -> None:
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            textwrap.dedent(
                f"""
                import sys, time
                from pathlib import Path
                from warehouse.writer_lock import exclusive_writer
                with exclusive_writer(Path({str(tmp_path)!r})):
                    print("locked", flush=True)
                    sys.stdin.readline()
                """
            ),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        with (
            pytest.raises(WriterBusyError, match="only one DuckDB writer"),
            exclusive_writer(tmp_path),
        ):
            pass
    finally:
        holder.stdin.write("\n")
        holder.stdin.flush()
        holder.wait(timeout=30)
    with exclusive_writer(tmp_path):  # released when the holder ends
        pass


def test_lock_released_when_holder_is_killed(tmp_path: Path) -> None:
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "from pathlib import Path; import time\n"
            "from warehouse.writer_lock import exclusive_writer\n"
            f"with exclusive_writer(Path({str(tmp_path)!r})):\n"
            "    print('locked', flush=True); time.sleep(60)\n",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout.readline().strip() == "locked"
    holder.kill()
    holder.wait(timeout=30)
    with exclusive_writer(tmp_path):
        pass
