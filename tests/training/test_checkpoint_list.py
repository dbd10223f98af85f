"""Listing checkpoints from their meta.json, broken folders reported and not fatal, and the folder a name stands for."""
from pathlib import Path

import pytest

from attnviz.training.checkpoint_folder import SHIPPED_DIR, CheckpointError
from attnviz.training.checkpoint_list import find_checkpoint, list_checkpoints


def test_list_reads_checkpoints_and_reports_broken_folders(tmp_path, make_checkpoint):
    make_checkpoint(tmp_path / "good", metrics={"exact_match": 0.5})
    (tmp_path / "empty").mkdir()
    (tmp_path / "future").mkdir()
    (tmp_path / "future" / "meta.json").write_text('{"format_version": 99}')  # written by a newer attnviz
    (tmp_path / "notes.txt").write_text("not a folder")
    found = list_checkpoints([tmp_path])
    assert [(i.name, i.path, i.shipped) for i in found] == [("good", tmp_path / "good", False)]
    assert found[0].meta["metrics"] == {"exact_match": 0.5}
    assert sorted(p.name for p, _ in found.problems) == ["empty", "future"]
    assert all(info.shipped for info in list_checkpoints([SHIPPED_DIR]))


def test_a_bare_name_is_found_in_your_folder_first_and_an_unknown_one_lists_what_exists(model_dirs, make_checkpoint):
    user, shipped = model_dirs
    for folder in (user / "both", shipped / "both", shipped / "theirs"):
        make_checkpoint(folder)
    assert find_checkpoint("both") == user / "both" and find_checkpoint("theirs") == shipped / "theirs"
    assert find_checkpoint("elsewhere/m") == Path("elsewhere/m")  # a path is taken as it is
    with pytest.raises(CheckpointError, match="no checkpoint named 'nope' in .*; available: both, theirs$"):
        find_checkpoint("nope")


def test_an_unknown_name_is_reported_in_the_session_language(model_dirs, in_chinese):
    with in_chinese() as zh:
        with pytest.raises(CheckpointError) as error:
            find_checkpoint("nope")
        assert str(error.value) == zh("no checkpoint named {name} in {folders}; available: {available}",
                                      name="'nope'", folders=f"{model_dirs.user}, {model_dirs.shipped}",
                                      available=zh("none"))
