"""A checkpoint folder: the files in it, where the folders live, and reading its metadata without trusting it.

    reverse/
        model.safetensors   the weights (tied tensors stored once); never a pickle
        meta.json           format_version, architecture, config, tokenizer spec, task, train, history, ...
        tokenizer.model     only for tokenizers that have a file (listed in meta["tokenizer_files"])

Shipped models live in SHIPPED_DIR, the ones trained here in USER_DIR ($ATTNVIZ_USER_DIR); other modules read
the two as `checkpoint_folder.USER_DIR` when they need them, so a test can point them elsewhere. A save replaces a
folder in two renames (attnviz.training.checkpoint): the old folder first becomes the hidden trash `.NAME.old`, so
a reader here falls back to the trash when a crash came between the two. Nothing here follows a symbolic link.
"""
import json
import os
from pathlib import Path

from attnviz.i18n import N_, _
from attnviz.models.architectures import CONFIG_FAMILIES

FORMAT_VERSION = 1
WEIGHTS, META = "model.safetensors", "meta.json"
REPO_DIR = Path(__file__).resolve().parents[2]
SHIPPED_DIR = REPO_DIR / "checkpoints"
USER_DIR = Path(os.environ.get("ATTNVIZ_USER_DIR", REPO_DIR / "user_checkpoints"))
MAX_META_BYTES = 32 * 2**20


class CheckpointError(ValueError):
    """A checkpoint that cannot be saved or loaded, with a message a user can act on."""


def trash_of(path):
    """The hidden name the old folder of `path` has while a save replaces it."""
    return path.with_name(f".{path.name}.old")


def fsync(path):
    """Flush a file or folder to disk (folders cannot be opened on Windows: skipped there)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def not_a_link(path):
    """`path`, unless it is a symbolic link: a link in a checkpoint folder could point anywhere on the machine."""
    if path.is_symlink():
        raise CheckpointError(_("{path} is a symbolic link: checkpoints are read only from real folders and "
                                "files").format(path=path))
    return path


def existing_folder(path):
    """The folder to read for `path`: itself, or the old copy a crash mid-replace left as trash."""
    for folder in (path, trash_of(path)):
        if not_a_link(folder).is_dir():
            return folder
    raise CheckpointError(_("no checkpoint folder at {path}").format(path=path))


def read_file(file, limit, what):
    """The bytes of a regular file of at most `limit` bytes, opened without following a link; `what` says what the
    file is, marked with N_ ("the metadata") and translated here."""
    what = _(what)
    if not not_a_link(file).is_file():
        raise CheckpointError(_("{what} {file} is missing").format(what=what, file=file))
    try:
        fd = os.open(file, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))  # a link swapped in meanwhile is refused
        with os.fdopen(fd, "rb") as f:
            if os.fstat(f.fileno()).st_size > limit:
                raise CheckpointError(_("{what} {file} is larger than {megabytes} MB: refusing to read it").format(
                    what=what, file=file, megabytes=limit // 2**20))
            return f.read(limit + 1)
    except OSError as e:
        raise CheckpointError(_("cannot read {what} {file}: {reason}").format(what=what, file=file,
                                                                              reason=e.strerror or e)) from None


def read_meta(path):
    """meta.json of a checkpoint folder, checked for size, JSON syntax, format version and architecture."""
    meta_path = existing_folder(Path(path)) / META
    if not meta_path.is_file() and not meta_path.is_symlink():
        raise CheckpointError(_("{path} is missing: the folder is not a checkpoint").format(path=meta_path))
    data = read_file(meta_path, MAX_META_BYTES, N_("the metadata"))
    try:
        meta = json.loads(data)
    except (ValueError, RecursionError) as e:
        raise CheckpointError(_("{path} is not valid JSON: {reason}").format(path=meta_path, reason=e)) from None
    if not isinstance(meta, dict):
        raise CheckpointError(_("{path} must hold a JSON object, not {type}").format(path=meta_path,
                                                                                  type=type(meta).__name__))
    version = meta.get("format_version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise CheckpointError(_("{path} has no valid format_version (found {version})").format(path=meta_path,
                                                                                            version=repr(version)))
    if version > FORMAT_VERSION:
        raise CheckpointError(_("{folder} was written in checkpoint format {version} by a newer attnviz; this version "
                                "reads format {readable} at most: please upgrade attnviz").format(
            folder=meta_path.parent, version=version, readable=FORMAT_VERSION))
    if meta.get("architecture") not in CONFIG_FAMILIES:
        raise CheckpointError(_("{path} names an unknown architecture {architecture}; known: {known}").format(
            path=meta_path, architecture=repr(meta.get("architecture")), known=", ".join(CONFIG_FAMILIES)))
    for key in ("config", "tokenizer"):
        if not isinstance(meta.get(key), dict):
            raise CheckpointError(_("{path} has no {key} object").format(path=meta_path, key=repr(key)))
    return meta
