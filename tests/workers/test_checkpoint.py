"""Atomic checkpoint files: naming, pruning, newest-readable resume."""

from __future__ import annotations

import pytest

from workers import checkpoint


def write_text(text):
    return lambda p: p.write_text(text)


def test_save_names_lists_and_prunes(tmp_path):
    for step in (5, 10, 15, 20):
        checkpoint.save(tmp_path, step, write_text(f"s{step}"), keep=3)
    assert [p.name for p in sorted(tmp_path.iterdir())] == ["ckpt-00000010.pt", "ckpt-00000015.pt",
                                                            "ckpt-00000020.pt"]
    assert checkpoint.load_latest(tmp_path, lambda p: p.read_text()) == (20, "s20")


def test_failed_write_leaves_no_file(tmp_path):
    def boom(p):
        p.write_text("partial")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        checkpoint.save(tmp_path, 7, boom)
    assert list(tmp_path.iterdir()) == []


def test_unreadable_newest_falls_back(tmp_path, capsys):
    checkpoint.save(tmp_path, 1, write_text("good"))
    (tmp_path / "ckpt-00000002.pt").write_text("torn")
    (tmp_path / ".ckpt-00000003.pt.tmp-99").write_text("in flight")  # never picked up

    def read(p):
        if p.read_text() != "good":
            raise EOFError("truncated")
        return "good"

    assert checkpoint.load_latest(tmp_path, read) == (1, "good")
    assert "skipping unreadable checkpoint ckpt-00000002.pt" in capsys.readouterr().err


def test_suffixes_are_separate(tmp_path):
    checkpoint.save(tmp_path, 3, write_text("mx"), suffix=checkpoint.MXNET_SUFFIX)
    assert checkpoint.list_checkpoints(tmp_path) == []
    assert checkpoint.load_latest(tmp_path / "missing", lambda p: 1) is None
    assert checkpoint.load_latest(None, lambda p: 1) is None


def test_stale_temp_files_of_a_killed_writer_are_removed(tmp_path):
    (tmp_path / ".ckpt-00000004.pt.tmp-4242").write_text("half")
    checkpoint.save(tmp_path, 5, write_text("ok"))
    assert [p.name for p in tmp_path.iterdir()] == ["ckpt-00000005.pt"]
