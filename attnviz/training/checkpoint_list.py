"""Which checkpoints there are: every folder of SHIPPED_DIR and USER_DIR, read from its meta.json alone, and the
folder a bare name stands for (USER_DIR first, so your model of a name is found before a shipped one)."""
from dataclasses import dataclass
from pathlib import Path

from attnviz.i18n import _
from attnviz.training import checkpoint_folder
from attnviz.training.checkpoint_folder import CheckpointError, read_meta, trash_of
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
                found.append(CheckpointInfo(name, d / name, shipped, read_meta(d / name)))
            except CheckpointError as e:
                found.problems.append((d / name, str(e)))
    return found


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
