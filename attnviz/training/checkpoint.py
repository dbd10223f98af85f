"""Saving and loading a checkpoint: its folder (attnviz.training.checkpoint_folder) written in one step, and read back
into a model, its tokenizer and its task, refusing any file that does not fit.

    path = save_checkpoint("my-reverse", model, tokenizer, {"task": task.spec()})  # USER_DIR / "my-reverse"
    checkpoint = load_checkpoint("my-reverse")                                     # USER_DIR, then SHIPPED_DIR

Saving writes a hidden temporary folder beside the target and renames it into place. Replacing a checkpoint renames
the old one to a hidden trash name first, so a crash at any moment leaves the old or the new checkpoint readable
under the name (loading falls back to the trash if the crash came between the two renames; the next save tidies
up). A save holds the checkpoint's name while it writes (attnviz.training.checkpoint_names.claim_name).
"""
import json
import math
import os
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
from attnviz.i18n import N_, _
from attnviz.models.architectures import CONFIG_FAMILIES, build_model, check_size, family_of
from attnviz.training.checkpoint_folder import (FORMAT_VERSION, MAX_META_BYTES, META, WEIGHTS, CheckpointError,
                                                existing_folder, fsync, not_a_link, read_file, read_meta, trash_of)
from attnviz.training.checkpoint_list import find_checkpoint
from attnviz.training.checkpoint_names import claim_name, save_folder, validate_name
from attnviz.training.owners import owner_of

MAX_TOKENIZER_FILE_BYTES = 32 * 2**20


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
    raise CheckpointError(_("{where} is a {type}, which a checkpoint cannot store as JSON").format(
        where=where, type=type(value).__name__))


# ---------------------------------------------------------------------------------------------- saving

def _unique_state(model):
    """name -> tensor of the state dict, each shared tensor (tied embeddings) once, under its first name."""
    state, seen = {}, set()
    for name, tensor in model.state_dict(keep_vars=True).items():
        if id(tensor) not in seen:
            seen.add(id(tensor))
            state[name] = tensor
    return state


def _write(path, data):
    with open(path, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def _tidy(path):
    """Finish a replace a crash interrupted: restore a lone trash folder, drop stale ones and temporaries."""
    trash = trash_of(path)
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
    fsync(folder / WEIGHTS)
    for file_name, data in files.items():
        _write(folder / file_name, data)
    _write(folder / META, meta_bytes)
    fsync(folder)


def save_checkpoint(path, model, tokenizer, meta, claim=None):
    """Save `model` and `tokenizer` with `meta` (task, train, history, metrics, snapshots) as a checkpoint.

    `path` is a folder path or a bare name (saved in USER_DIR). The keys format_version, architecture,
    config, tokenizer and tokenizer_files are filled in from the model and tokenizer; "created" if absent.
    The name must be held: by `claim` (a run holds its name from its start), or else it is claimed here for
    meta["owner"] ("" for the command line), which refuses a name someone else holds. Returns the checkpoint's path.
    """
    path = save_folder(path)
    files = tokenizer.files()
    for file_name in files:
        if validate_name(file_name) in (WEIGHTS, META):
            raise CheckpointError(_("a tokenizer file may not be called {name}").format(name=repr(file_name)))
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
        raise CheckpointError(_("meta.json would be {megabytes} MB; keep it under {limit} MB (fewer attention "
                                "snapshots?)").format(megabytes=f"{len(meta_bytes) / 2**20:.0f}",
                                                      limit=MAX_META_BYTES // 2**20))
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
            raise CheckpointError(_("{path} exists and is not a checkpoint: refusing to replace it").format(path=path))
        tmp = path.with_name(f".{path.name}.tmp-{uuid.uuid4().hex[:8]}")
        try:
            _write_folder(tmp, weights, files, meta_bytes)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        if path.exists():
            os.rename(path, trash_of(path))
            fsync(path.parent)
        os.rename(tmp, path)
        fsync(path.parent)
        shutil.rmtree(trash_of(path), ignore_errors=True)
    except OSError as e:
        raise CheckpointError(_("cannot save the checkpoint {path}: {reason}").format(path=path,
                                                                                      reason=e.strerror or e)) from None
    return path


# ---------------------------------------------------------------------------------------------- loading

def _config(meta, folder):
    try:
        config = CONFIG_FAMILIES[meta["architecture"]].from_dict(meta["config"])
    except (TypeError, ValueError) as e:
        raise CheckpointError(_("the model config in {path} is invalid: {reason}").format(path=folder / META,
                                                                                         reason=e)) from None
    try:
        check_size(config)  # counted from the config: nothing is built or allocated yet
    except ValueError as e:
        raise CheckpointError(_("refusing to build the model described in {path}: {reason}").format(
            path=folder / META, reason=e)) from None
    return config


def _tokenizer(meta, folder):
    names = meta.get("tokenizer_files", [])
    if not isinstance(names, list):
        raise CheckpointError(_("tokenizer_files in {path} must be a list of file names").format(path=folder / META))
    files = {}
    for name in names:
        files[name] = read_file(folder / validate_name(name), MAX_TOKENIZER_FILE_BYTES, N_("the tokenizer file"))
    try:
        return tokenizer_from_spec(meta["tokenizer"], files)
    except Exception as e:  # a corrupt tokenizer file can fail anywhere inside sentencepiece
        raise CheckpointError(_("cannot rebuild the tokenizer of {folder}: {reason}").format(folder=folder,
                                                                                            reason=e)) from None


def _check_vocabulary(config, tokenizer, folder):
    """The model's embeddings and output must have one row per token id the tokenizer can produce."""
    for key, value in (("src_vocab_size", tokenizer.vocab_size), ("tgt_vocab_size", tokenizer.vocab_size),
                       ("pad_id", tokenizer.pad_id)):
        if getattr(config, key) != value:
            raise CheckpointError(_("the config in {path} has {key}={value}, but its tokenizer's is {expected}: the "
                                    "two must be equal").format(path=folder / META, key=key,
                                                                value=repr(getattr(config, key)), expected=value))


def _load_weights(model, file):
    """Copy the tensors of `file` into `model`, naming any missing, unexpected or misshapen tensor."""
    if not not_a_link(file).is_file():
        raise CheckpointError(_("{file} is missing").format(file=file))
    with open(file, "rb") as f:
        head = f.read(4)
    if head.startswith(b"PK\x03\x04") or head[:1] == b"\x80":
        raise CheckpointError(_("{file} looks like a pickle / torch.save file, not safetensors; attnviz never "
                                "unpickles files (they can run arbitrary code)").format(file=file))
    expected = _unique_state(model)
    try:
        with safe_open(file, framework="pt") as f:
            stored = set(f.keys())
            missing, unexpected = sorted(set(expected) - stored), sorted(stored - set(expected))
            if missing or unexpected:
                raise CheckpointError(_("{file} does not fit the model: missing tensors {missing}, unexpected "
                                        "tensors {unexpected}").format(file=file, missing=missing,
                                                                       unexpected=unexpected))
            for name, target in expected.items():
                shape = tuple(f.get_slice(name).get_shape())
                if shape != tuple(target.shape):
                    raise CheckpointError(_("{file}: tensor {name} has shape {shape}, but the model expects "
                                            "{expected}").format(file=file, name=repr(name), shape=shape,
                                                                 expected=tuple(target.shape)))
                with torch.no_grad():
                    target.copy_(f.get_tensor(name))
    except CheckpointError:
        raise
    except Exception as e:  # safetensors raises its own error type for truncated or corrupt files
        raise CheckpointError(_("{file} is truncated or corrupt: {reason}").format(file=file, reason=e)) from None


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
                raise CheckpointError(_("cannot rebuild the task recorded in {path}: {reason}").format(
                    path=self.path / META, reason=e)) from None
        return self._task


def load_checkpoint(path):
    """Load a checkpoint by bare name (USER_DIR, then SHIPPED_DIR) or folder path; CheckpointError if unusable."""
    path = find_checkpoint(path)
    folder = existing_folder(path)
    meta = read_meta(folder)
    config = _config(meta, folder)
    tokenizer = _tokenizer(meta, folder)
    _check_vocabulary(config, tokenizer, folder)
    model = build_model(config)
    _load_weights(model, folder / WEIGHTS)
    return Checkpoint(path.name, path, model.eval(), tokenizer, meta)
