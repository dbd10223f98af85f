"""Which checkpoints there are: every folder of SHIPPED_DIR and USER_DIR, read from its meta.json alone, and the
folder a bare name stands for (USER_DIR first, so your model of a name is found before a shipped one)."""
import functools
from dataclasses import dataclass
from pathlib import Path

from attnviz.i18n import _
from attnviz.training import checkpoint_folder
from attnviz.training.checkpoint_folder import META, CheckpointError, read_meta, trash_of
from attnviz.training.checkpoint_names import is_bare_name, validate_name


@dataclass
class CheckpointInfo:
    name: str
    path: Path
    shipped: bool
    meta: dict


class CheckpointList(list):
    """A list of CheckpointInfo; `.problems` holds (path, message) for folders that could not be read."""

    def __init__(self, infos=(), problems=()):
        super().__init__(infos)
        self.problems = list(problems)


def list_checkpoints(dirs=None):
    """Every checkpoint in `dirs` (default SHIPPED_DIR, USER_DIR), reading meta.json only; broken ones skipped."""
    shipped_dir = checkpoint_folder.SHIPPED_DIR
    dirs = (shipped_dir, checkpoint_folder.USER_DIR) if dirs is None else dirs
    found = CheckpointList()
    for d in map(Path, dirs):
        if not d.is_dir():
            continue
        shipped = d.resolve() == shipped_dir.resolve()
        names = {p.name for p in d.iterdir() if (p.is_dir() or p.is_symlink()) and not p.name.startswith(".")}
        names |= {p.name[1:-4] for p in d.glob(".*.old") if p.is_dir()}  # a replace cut short by a crash
        for name in sorted(names):
            try:
                found.append(CheckpointInfo(name, d / name, shipped, listed_meta(d / name)))
            except CheckpointError as e:
                found.problems.append((d / name, str(e)))
    return found


def listed_meta(folder):
    """`read_meta(folder)`, parsed again only when its meta.json changes. A shipped meta.json holds its training
    history (megabytes of JSON): parsing every one again whenever a student saves a model cost a class server a
    quarter of its time. A save writes a new file and renames its folder into place, so the folder's or the file's
    inode, size or time change (not followed: a folder or file made a link is read again, and refused); a folder
    that cannot be read is not remembered."""
    try:
        stamp = tuple((s.st_ino, s.st_size, s.st_mtime_ns) for s in (folder.lstat(), (folder / META).lstat()))
    except OSError:
        return read_meta(folder)  # says what is missing
    return _parsed_meta(folder, stamp)


@functools.lru_cache(maxsize=1024)
def _parsed_meta(folder, stamp):
    return read_meta(folder)


def find_checkpoint(name_or_path, dirs=None):
    """The folder for a bare name (first of USER_DIR, SHIPPED_DIR holding it) or for a path."""
    if not is_bare_name(name_or_path):
        return Path(name_or_path)
    name = validate_name(name_or_path)
    dirs = (checkpoint_folder.USER_DIR, checkpoint_folder.SHIPPED_DIR) if dirs is None else dirs
    for d in dirs:
        path = Path(d) / name
        if path.is_dir() or trash_of(path).is_dir() or path.is_symlink():
            return path
    known = sorted({info.name for info in list_checkpoints(dirs)})
    raise CheckpointError(_("no checkpoint named {name} in {folders}; available: {available}").format(
        name=repr(name), folders=", ".join(map(str, dirs)), available=", ".join(known) or _("none")))
