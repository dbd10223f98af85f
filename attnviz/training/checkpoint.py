"""Checkpoints: a folder with safetensors weights, JSON metadata and the tokenizer's own files.

    reverse/
        model.safetensors   the weights (tied tensors stored once); never a pickle
        meta.json           format_version, architecture, config, tokenizer spec, task, train, history, ...
        tokenizer.model     only for tokenizers that have a file (listed in meta["tokenizer_files"])

A bare name ("reverse") means a folder in USER_DIR (saving) or in USER_DIR then SHIPPED_DIR (loading);
anything with a path separator is a path. Saving writes a hidden temporary folder beside the target and
renames it into place. Replacing a checkpoint renames the old one to a hidden trash name first, so a crash
at any moment leaves the old or the new checkpoint readable under the name (loading falls back to the trash
if the crash came between the two renames; the next save tidies up).

Every writer holds the name it writes (`claim_name`) from before its run starts until the save: one lock per
name across threads and processes, refusing a name another writer holds now, a name under which someone else's
model is saved, and (in USER_DIR) a shipped model's name. Only a model's owner deletes it (`delete_checkpoint`).
"""
import json
import math
import os
import re
import shutil
import uuid
from dataclasses import asdict, dataclass, field, is_dataclass
from datetime import datetime, timezone
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from attnviz.data.tasks import task_from_spec
from attnviz.data.tokenizers import tokenizer_from_spec
from attnviz.models.architectures import CONFIG_FAMILIES, build_model, check_size, family_of
from attnviz.training.owners import owner_of, trained_by

try:
    import fcntl  # holds a name against other writers; absent on Windows, where names are not locked
except ImportError:
    fcntl = None

FORMAT_VERSION = 1
WEIGHTS, META = "model.safetensors", "meta.json"
REPO_DIR = Path(__file__).resolve().parents[2]
SHIPPED_DIR = REPO_DIR / "checkpoints"
USER_DIR = Path(os.environ.get("ATTNVIZ_USER_DIR", REPO_DIR / "user_checkpoints"))
MAX_META_BYTES = 32 * 2**20
MAX_TOKENIZER_FILE_BYTES = 32 * 2**20
NAME_PATTERN = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]{0,99}")


class CheckpointError(ValueError):
    """A checkpoint that cannot be saved or loaded, with a message a user can act on."""


# ---------------------------------------------------------------------------------------------- names

def validate_name(name):
    """Return `name` if it can name a checkpoint folder, else raise CheckpointError saying why."""
    if not isinstance(name, str) or not NAME_PATTERN.fullmatch(name) or name == "..":
        raise CheckpointError(
            f"{name!r} cannot name a checkpoint: use 1-100 letters, digits, '.', '_' or '-', "
            "not starting with '.' and without path separators (e.g. 'reverse-small')")
    return name


def _is_bare_name(path):
    return isinstance(path, str) and "/" not in path and os.sep not in path


def _trash(path):
    return path.with_name(f".{path.name}.old")


def _target(path):
    """The folder a save writes: USER_DIR / name for a bare name, else the path; its name validated."""
    path = USER_DIR / validate_name(path) if _is_bare_name(path) else Path(path)
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
        raise CheckpointError(f"cannot save the checkpoint {path}: {e.strerror or e}") from None
    try:
        if fcntl:
            fcntl.flock(claim._file, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        claim.release()
        raise CheckpointError(f"the name {path.name!r} is taken: a model is being trained or saved under it right "
                              "now. Choose another name") from None
    try:
        if path.exists() or path.is_symlink() or _trash(path).is_dir():
            meta = read_meta(path)
            if owner_of(meta) != owner:
                raise CheckpointError(f"the name {path.name!r} is taken: it holds a model trained by "
                                      f"{trained_by(meta)}. Choose another name")
    except BaseException:
        claim.release()
        raise
    return claim


def claim_name(name_or_path, owner=""):
    """Hold a name (a bare name: in USER_DIR) for `owner` (a browser's token; "" the command line) until the
    claim is released, or raise a CheckpointError saying why not: a shipped model's name (reserved in USER_DIR, so
    that the shipped model stays visible), a writer holding it right now, or someone else's model saved under it.
    The owner's own model under the name may be replaced."""
    path = _target(name_or_path)
    if path.parent.resolve() == USER_DIR.resolve() and (SHIPPED_DIR / path.name).is_dir():
        raise CheckpointError(f"{path.name!r} is the name of a shipped model, reserved so that the shipped model "
                              f"stays visible: choose another name (e.g. 'my-{path.name}')")
    return _hold(path, owner)


def delete_checkpoint(name, owner):
    """Delete the model `name` of USER_DIR if `owner` trained it; a CheckpointError for a shipped model, someone
    else's, or one being trained or saved right now. It is renamed away first, so it vanishes in one step."""
    path = USER_DIR / validate_name(name)
    if not (path.is_dir() or _trash(path).is_dir()):
        raise CheckpointError(f"{name!r} is a shipped model: it cannot be deleted" if (SHIPPED_DIR / name).is_dir()
                              else f"there is no model named {name!r} to delete")
    with _hold(path, owner):
        for folder in (path, _trash(path)):
            if folder.is_dir():
                gone = path.with_name(f".{name}.deleted-{uuid.uuid4().hex[:8]}")
                os.rename(folder, gone)
                _fsync(path.parent)
                shutil.rmtree(gone, ignore_errors=True)


def find_checkpoint(name_or_path, dirs=None):
    """The folder for a bare name (first of USER_DIR, SHIPPED_DIR holding it) or for a path."""
    if not _is_bare_name(name_or_path):
        return Path(name_or_path)
    name = validate_name(name_or_path)
    dirs = (USER_DIR, SHIPPED_DIR) if dirs is None else dirs
    for d in dirs:
        path = Path(d) / name
        if path.is_dir() or _trash(path).is_dir() or path.is_symlink():
            return path
    known = sorted({info.name for info in list_checkpoints(dirs)})
    raise CheckpointError(f"no checkpoint named {name!r} in {', '.join(map(str, dirs))}; "
                          f"available: {', '.join(known) or 'none'}")


# ---------------------------------------------------------------------------------------------- JSON

def _jsonable(value, where="meta"):
    """Plain JSON values from what training produces: tensors, numpy numbers, dataclasses, NaN -> None."""
    if is_dataclass(value) and not isinstance(value, type):
        value = asdict(value)
    if hasattr(value, "tolist") and not isinstance(value, (str, bytes)):  # torch / numpy arrays and scalars
        value = value.tolist()
    if value is None or isinstance(value, (bool, str, int)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, dict):
        return {str(k): _jsonable(v, f"{where}[{k!r}]") for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v, f"{where}[{i}]") for i, v in enumerate(value)]
    raise CheckpointError(f"{where} is a {type(value).__name__}, which a checkpoint cannot store as JSON")


# ---------------------------------------------------------------------------------------------- saving

def _unique_state(model):
    """name -> tensor of the state dict, each shared tensor (tied embeddings) once, under its first name."""
    state, seen = {}, set()
    for name, tensor in model.state_dict(keep_vars=True).items():
        if id(tensor) not in seen:
            seen.add(id(tensor))
            state[name] = tensor
    return state


def _fsync(path):
    """Flush a file or folder to disk (folders cannot be opened on Windows: skipped there)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write(path, data):
    with open(path, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def _tidy(path):
    """Finish a replace a crash interrupted: restore a lone trash folder, drop stale ones and temporaries."""
    trash = _trash(path)
    if trash.is_dir():
        if path.is_dir():
            shutil.rmtree(trash)
        else:
            os.rename(trash, path)
    for leftover in path.parent.glob(f".{path.name}.tmp-*"):
        shutil.rmtree(leftover, ignore_errors=True)


def _write_folder(folder, weights, files, meta_bytes):
    """A complete checkpoint folder, flushed to disk before anyone renames it into place."""
    folder.mkdir()
    save_file(weights, folder / WEIGHTS, metadata={"format": "pt"})
    os.chmod(folder / WEIGHTS, 0o644)  # safetensors creates it private; the app's server may run as another user
    _fsync(folder / WEIGHTS)
    for file_name, data in files.items():
        _write(folder / file_name, data)
    _write(folder / META, meta_bytes)
    _fsync(folder)


def save_checkpoint(path, model, tokenizer, meta, claim=None):
    """Save `model` and `tokenizer` with `meta` (task, train, history, metrics, snapshots) as a checkpoint.

    `path` is a folder path or a bare name (saved in USER_DIR). The keys format_version, architecture,
    config, tokenizer and tokenizer_files are filled in from the model and tokenizer; "created" if absent.
    The name must be held: by `claim` (a run holds its name from its start), or else it is claimed here for
    meta["owner"] ("" for the command line), which refuses a name someone else holds. Returns the checkpoint's path.
    """
    path = _target(path)
    files = tokenizer.files()
    for file_name in files:
        if validate_name(file_name) in (WEIGHTS, META):
            raise CheckpointError(f"a tokenizer file may not be called {file_name!r}")
    meta = _jsonable({
        **meta,
        "format_version": FORMAT_VERSION,
        "architecture": family_of(model.config),
        "config": asdict(model.config),
        "tokenizer": tokenizer.spec(),
        "tokenizer_files": sorted(files),
        "created": meta.get("created") or datetime.now(timezone.utc).isoformat(timespec="seconds"),
    })
    meta_bytes = json.dumps(meta, allow_nan=False).encode()
    if len(meta_bytes) > MAX_META_BYTES:
        raise CheckpointError(f"meta.json would be {len(meta_bytes) / 2**20:.0f} MB; keep it under "
                              f"{MAX_META_BYTES // 2**20} MB (fewer attention snapshots?)")
    weights = {name: t.detach().to("cpu", copy=True).contiguous() for name, t in _unique_state(model).items()}
    if claim is None:
        with claim_name(path, owner_of(meta)) as claim:
            return _replace(path, claim, weights, files, meta_bytes)
    return _replace(path, claim, weights, files, meta_bytes)


def _replace(path, claim, weights, files, meta_bytes):
    """Write the checkpoint folder beside `path` and rename it into place (see the module text), under `claim`."""
    if not claim.held or claim.path != path:
        raise CheckpointError(f"saving {path} needs a claim on its name, held while saving")
    try:
        _tidy(path)
        if path.exists() and not (path / META).is_file():
            raise CheckpointError(f"{path} exists and is not a checkpoint: refusing to replace it")
        tmp = path.with_name(f".{path.name}.tmp-{uuid.uuid4().hex[:8]}")
        try:
            _write_folder(tmp, weights, files, meta_bytes)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        if path.exists():
            os.rename(path, _trash(path))
            _fsync(path.parent)
        os.rename(tmp, path)
        _fsync(path.parent)
        shutil.rmtree(_trash(path), ignore_errors=True)
    except OSError as e:
        raise CheckpointError(f"cannot save the checkpoint {path}: {e.strerror or e}") from None
    return path


# ---------------------------------------------------------------------------------------------- loading

def _not_a_link(path):
    """`path`, unless it is a symbolic link: a link in a checkpoint folder could point anywhere on the machine."""
    if path.is_symlink():
        raise CheckpointError(f"{path} is a symbolic link: checkpoints are read only from real folders and files")
    return path


def _existing(path):
    """The folder to read for `path`: itself, or the old copy a crash mid-replace left as trash."""
    for folder in (path, _trash(path)):
        if _not_a_link(folder).is_dir():
            return folder
    raise CheckpointError(f"no checkpoint folder at {path}")


def _read_file(file, limit, what):
    """The bytes of a regular file of at most `limit` bytes, opened without following a link."""
    if not _not_a_link(file).is_file():
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
    meta_path = _existing(Path(path)) / META
    if not meta_path.is_file() and not meta_path.is_symlink():
        raise CheckpointError(f"{meta_path} is missing: the folder is not a checkpoint")
    data = _read_file(meta_path, MAX_META_BYTES, "the metadata")
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


def _config(meta, folder):
    try:
        config = CONFIG_FAMILIES[meta["architecture"]].from_dict(meta["config"])
    except (TypeError, ValueError) as e:
        raise CheckpointError(f"the model config in {folder / META} is invalid: {e}") from None
    try:
        check_size(config)  # counted from the config: nothing is built or allocated yet
    except ValueError as e:
        raise CheckpointError(f"refusing to build the model described in {folder / META}: {e}") from None
    return config


def _tokenizer(meta, folder):
    names = meta.get("tokenizer_files", [])
    if not isinstance(names, list):
        raise CheckpointError(f"tokenizer_files in {folder / META} must be a list of file names")
    files = {}
    for name in names:
        files[name] = _read_file(folder / validate_name(name), MAX_TOKENIZER_FILE_BYTES, "the tokenizer file")
    try:
        return tokenizer_from_spec(meta["tokenizer"], files)
    except Exception as e:  # a corrupt tokenizer file can fail anywhere inside sentencepiece
        raise CheckpointError(f"cannot rebuild the tokenizer of {folder}: {e}") from None


def _check_vocabulary(config, tokenizer, folder):
    """The model's embeddings and output must have one row per token id the tokenizer can produce."""
    for key, value in (("src_vocab_size", tokenizer.vocab_size), ("tgt_vocab_size", tokenizer.vocab_size),
                       ("pad_id", tokenizer.pad_id)):
        if getattr(config, key) != value:
            raise CheckpointError(f"the config in {folder / META} has {key}={getattr(config, key)!r}, but its "
                                  f"tokenizer's is {value}: the two must be equal")


def _load_weights(model, file):
    """Copy the tensors of `file` into `model`, naming any missing, unexpected or misshapen tensor."""
    if not _not_a_link(file).is_file():
        raise CheckpointError(f"{file} is missing")
    with open(file, "rb") as f:
        head = f.read(4)
    if head.startswith(b"PK\x03\x04") or head[:1] == b"\x80":
        raise CheckpointError(f"{file} looks like a pickle / torch.save file, not safetensors; "
                              "attnviz never unpickles files (they can run arbitrary code)")
    expected = _unique_state(model)
    try:
        with safe_open(file, framework="pt") as f:
            stored = set(f.keys())
            missing, unexpected = sorted(set(expected) - stored), sorted(stored - set(expected))
            if missing or unexpected:
                raise CheckpointError(f"{file} does not fit the model: missing tensors {missing}, "
                                      f"unexpected tensors {unexpected}")
            for name, target in expected.items():
                shape = tuple(f.get_slice(name).get_shape())
                if shape != tuple(target.shape):
                    raise CheckpointError(f"{file}: tensor {name!r} has shape {shape}, "
                                          f"but the model expects {tuple(target.shape)}")
                with torch.no_grad():
                    target.copy_(f.get_tensor(name))
    except CheckpointError:
        raise
    except Exception as e:  # safetensors raises its own error type for truncated or corrupt files
        raise CheckpointError(f"{file} is truncated or corrupt: {e}") from None


@dataclass
class Checkpoint:
    name: str
    path: Path
    model: torch.nn.Module  # in eval mode, on the CPU
    tokenizer: object
    meta: dict
    _task: object = field(default=None, init=False, repr=False)

    @property
    def config(self):
        return self.model.config

    def task(self):
        """The task the model was trained on, rebuilt once from meta["task"] with this tokenizer (None if unrecorded)."""
        if self._task is None and self.meta.get("task"):
            try:
                self._task = task_from_spec(self.meta["task"], self.tokenizer)
            except (TypeError, ValueError) as e:
                raise CheckpointError(f"cannot rebuild the task recorded in {self.path / META}: {e}") from None
        return self._task


def load_checkpoint(path):
    """Load a checkpoint by bare name (USER_DIR, then SHIPPED_DIR) or folder path; CheckpointError if unusable."""
    path = find_checkpoint(path)
    folder = _existing(path)
    meta = read_meta(folder)
    config = _config(meta, folder)
    tokenizer = _tokenizer(meta, folder)
    _check_vocabulary(config, tokenizer, folder)
    model = build_model(config)
    _load_weights(model, folder / WEIGHTS)
    return Checkpoint(path.name, path, model.eval(), tokenizer, meta)


# ---------------------------------------------------------------------------------------------- listing

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
    dirs = (SHIPPED_DIR, USER_DIR) if dirs is None else dirs
    found = CheckpointList()
    for d in map(Path, dirs):
        if not d.is_dir():
            continue
        shipped = d.resolve() == SHIPPED_DIR.resolve()
        names = {p.name for p in d.iterdir() if (p.is_dir() or p.is_symlink()) and not p.name.startswith(".")}
        names |= {p.name[1:-4] for p in d.glob(".*.old") if p.is_dir()}  # a replace cut short by a crash
        for name in sorted(names):
            try:
                found.append(CheckpointInfo(name, d / name, shipped, read_meta(d / name)))
            except CheckpointError as e:
                found.problems.append((d / name, str(e)))
    return found
