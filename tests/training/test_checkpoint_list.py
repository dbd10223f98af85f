"""Listing checkpoints from their meta.json, broken folders reported and not fatal, and the folder a name stands for."""
from pathlib import Path

import pytest

from attnviz.training.checkpoint_folder import SHIPPED_DIR, CheckpointError, read_meta
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


def test_a_listing_parses_again_only_the_meta_json_that_changed(tmp_path, make_checkpoint, monkeypatch):
    from attnviz.training import checkpoint_list

    make_checkpoint(tmp_path / "kept", metrics={"exact_match": 0.1})
    make_checkpoint(tmp_path / "saved-again", metrics={"exact_match": 0.2})
    list_checkpoints([tmp_path])
    parsed = []
    monkeypatch.setattr(checkpoint_list, "read_meta", lambda folder: parsed.append(folder.name) or read_meta(folder))
    make_checkpoint(tmp_path / "saved-again", metrics={"exact_match": 0.9})  # a student saves under the name again
    make_checkpoint(tmp_path / "new", metrics={"exact_match": 0.5})
    found = list_checkpoints([tmp_path])
    assert {info.name: info.meta["metrics"]["exact_match"] for info in found} == {
        "kept": 0.1, "saved-again": 0.9, "new": 0.5}
    assert sorted(parsed) == ["new", "saved-again"]


def test_a_listed_checkpoint_whose_meta_json_becomes_a_link_is_refused_when_listed_again(tmp_path, make_checkpoint):
    make_checkpoint(tmp_path / "listed" / "m")
    assert [info.name for info in list_checkpoints([tmp_path / "listed"])] == ["m"]
    (tmp_path / "listed" / "m" / "meta.json").rename(tmp_path / "meta.json")
    (tmp_path / "listed" / "m" / "meta.json").symlink_to(tmp_path / "meta.json")
    found = list_checkpoints([tmp_path / "listed"])
    assert list(found) == [] and [p.name for p, message in found.problems if "symbolic link" in message] == ["m"]
