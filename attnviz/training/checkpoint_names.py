"""Checkpoint names: what may name a checkpoint, which folder a name stands for, and who holds a name.

A bare name ("reverse") means a folder in USER_DIR (saving) or in USER_DIR then SHIPPED_DIR (loading:
attnviz.training.checkpoint_list.find_checkpoint); anything with a path separator is a path.

Every writer holds the name it writes (`claim_name`) from before its run starts until the save: one lock per
name across threads and processes, refusing a name another writer holds now, a name under which someone else's
model is saved, and (in USER_DIR) a shipped model's name. Only a model's owner deletes it (`delete_checkpoint`).
"""
import os
import re
import shutil
import uuid
from pathlib import Path

from attnviz.i18n import _
from attnviz.training import checkpoint_folder
from attnviz.training.checkpoint_folder import CheckpointError, fsync, read_meta, trash_of
from attnviz.training.owners import owner_of, trained_by

try:
    import fcntl  # holds a name against other writers; absent on Windows, where names are not locked
except ImportError:
    fcntl = None

NAME_PATTERN = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]{0,99}")


def validate_name(name):
    """Return `name` if it can name a checkpoint folder, else raise CheckpointError saying why."""
    if not isinstance(name, str) or not NAME_PATTERN.fullmatch(name) or name == "..":
        raise CheckpointError(_("{name} cannot name a checkpoint: use 1-100 letters, digits, '.', '_' or '-', not "
                                "starting with '.' and without path separators (e.g. 'reverse-small')").format(
            name=repr(name)))
    return name


def is_bare_name(path):
    return isinstance(path, str) and "/" not in path and os.sep not in path


def save_folder(name_or_path):
    """The folder a save writes: USER_DIR / name for a bare name, else the path; its name validated."""
    path = (checkpoint_folder.USER_DIR / validate_name(name_or_path) if is_bare_name(name_or_path)
            else Path(name_or_path))
    validate_name(path.name)
    return path


# ---------------------------------------------------------------------------------------------- who holds a name

class NameClaim:
    """One writer's hold on a checkpoint name, from before its run starts until its checkpoint is saved.

    Every writer (Train live, the comparison's "Train all three", the command line, any save) holds the name it
    writes, so two of them never train or save under one name at once, in one process or in several: the hold is
    an exclusive `flock` on the hidden file `.NAME.lock` beside the folder, taken without waiting (the second
    writer is refused, it does not queue up to replace the first) and released by the kernel if its process dies.
    Lock files stay: removing one while another writer opens it would let two writers hold the name."""

    def __init__(self, path, file):
        self.path, self._file = path, file

    @property
    def held(self):
        return not self._file.closed

    def release(self):
        self._file.close()  # closing the file releases its lock

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.release()


def _hold(path, owner):
    """A NameClaim on `path` for `owner`, refused while another writer holds it or when someone else's model is
    saved there."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        claim = NameClaim(path, open(path.with_name(f".{path.name}.lock"), "a"))
    except OSError as e:
        raise CheckpointError(_("cannot save the checkpoint {path}: {reason}").format(path=path,
                                                                                  reason=e.strerror or e)) from None
    try:
        if fcntl:
            fcntl.flock(claim._file, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        claim.release()
        raise CheckpointError(_("the name {name} is taken: a model is being trained or saved under it right now. "
                                "Choose another name").format(name=repr(path.name))) from None
    try:
        if path.exists() or path.is_symlink() or trash_of(path).is_dir():
            meta = read_meta(path)
            if owner_of(meta) != owner:
                raise CheckpointError(_("the name {name} is taken: it holds a model trained by {trainer}. Choose "
                                        "another name").format(name=repr(path.name), trainer=trained_by(meta)))
    except BaseException:
        claim.release()
        raise
    return claim


def claim_name(name_or_path, owner=""):
    """Hold a name (a bare name: in USER_DIR) for `owner` (a browser's token; "" the command line) until the
    claim is released, or raise a CheckpointError saying why not: a shipped model's name (reserved in USER_DIR, so
    that the shipped model stays visible), a writer holding it right now, or someone else's model saved under it.
    The owner's own model under the name may be replaced."""
    path = save_folder(name_or_path)
    if (path.parent.resolve() == checkpoint_folder.USER_DIR.resolve()
            and (checkpoint_folder.SHIPPED_DIR / path.name).is_dir()):
        raise CheckpointError(_("{name} is the name of a shipped model, reserved so that the shipped model stays "
                                "visible: choose another name (e.g. '{suggestion}')").format(
            name=repr(path.name), suggestion=f"my-{path.name}"))
    return _hold(path, owner)


def delete_checkpoint(name, owner):
    """Delete the model `name` of USER_DIR if `owner` trained it; a CheckpointError for a shipped model, someone
    else's, or one being trained or saved right now. It is renamed away first, so it vanishes in one step."""
    path = checkpoint_folder.USER_DIR / validate_name(name)
    if not (path.is_dir() or trash_of(path).is_dir()):
        shipped = (checkpoint_folder.SHIPPED_DIR / name).is_dir()
        refusal = (_("{name} is a shipped model: it cannot be deleted") if shipped
                   else _("there is no model named {name} to delete"))
        raise CheckpointError(refusal.format(name=repr(name)))
    with _hold(path, owner):
        for folder in (path, trash_of(path)):
            if folder.is_dir():
                gone = path.with_name(f".{name}.deleted-{uuid.uuid4().hex[:8]}")
                os.rename(folder, gone)
                fsync(path.parent)
                shutil.rmtree(gone, ignore_errors=True)
