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
        raise CheckpointError(f"{path} is a symbolic link: checkpoints are read only from real folders and files")
    return path


def existing_folder(path):
    """The folder to read for `path`: itself, or the old copy a crash mid-replace left as trash."""
    for folder in (path, trash_of(path)):
        if not_a_link(folder).is_dir():
            return folder
    raise CheckpointError(f"no checkpoint folder at {path}")


def read_file(file, limit, what):
    """The bytes of a regular file of at most `limit` bytes, opened without following a link."""
    if not not_a_link(file).is_file():
        raise CheckpointError(f"{what} {file} is missing")
    try:
        fd = os.open(file, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))  # a link swapped in meanwhile is refused
        with os.fdopen(fd, "rb") as f:
            if os.fstat(f.fileno()).st_size > limit:
                raise CheckpointError(f"{what} {file} is larger than {limit // 2**20} MB: refusing to read it")
            return f.read(limit + 1)
    except OSError as e:
        raise CheckpointError(f"cannot read {what} {file}: {e.strerror or e}") from None


def read_meta(path):
    """meta.json of a checkpoint folder, checked for size, JSON syntax, format version and architecture."""
    meta_path = existing_folder(Path(path)) / META
    if not meta_path.is_file() and not meta_path.is_symlink():
        raise CheckpointError(f"{meta_path} is missing: the folder is not a checkpoint")
    data = read_file(meta_path, MAX_META_BYTES, "the metadata")
    try:
        meta = json.loads(data)
    except (ValueError, RecursionError) as e:
        raise CheckpointError(f"{meta_path} is not valid JSON: {e}") from None
    if not isinstance(meta, dict):
        raise CheckpointError(f"{meta_path} must hold a JSON object, not {type(meta).__name__}")
    version = meta.get("format_version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise CheckpointError(f"{meta_path} has no valid format_version (found {version!r})")
    if version > FORMAT_VERSION:
        raise CheckpointError(f"{meta_path.parent} was written in checkpoint format {version} by a newer attnviz; "
                              f"this version reads format {FORMAT_VERSION} at most: please upgrade attnviz")
    if meta.get("architecture") not in CONFIG_FAMILIES:
        raise CheckpointError(f"{meta_path} names an unknown architecture {meta.get('architecture')!r}; "
                              f"known: {', '.join(CONFIG_FAMILIES)}")
    for key in ("config", "tokenizer"):
        if not isinstance(meta.get(key), dict):
            raise CheckpointError(f"{meta_path} has no {key!r} object")
    return meta
