"""Who trained a run or a model, as everyone else sees it.

An owner is a browser's token (attnviz.app.owner: a hash, never shown) or "" for the command line and shipped
models. Others see the name the student typed, or a short anonymous label made from the token, which says nothing
about the token itself:

    anonymous_label("9f86d081884c7d65...")   # 'student 4b1e0c'
"""
import hashlib


def owner_of(meta):
    """Whose a checkpoint is: meta["owner"] (the token of the browser that trained it); "" for the command
    line's models, shipped ones and those saved before owners existed."""
    owner = meta.get("owner")
    return owner if isinstance(owner, str) else ""


def short_id(owner):
    """Six hex digits that stand for `owner` in names (reverse-lstm-4b1e0c) and labels: a one-way hash, so
    neither shows the token."""
    return hashlib.sha256(f"attnviz label:{owner}".encode()).hexdigest()[:6]


def anonymous_label(owner):
    """What others see for a student who typed no name: 'student 4b1e0c' (the command line: 'command line')."""
    return f"student {short_id(owner)}" if owner else "command line"


def trained_by(meta):
    """Who trained a checkpoint, as shown to others: the name they gave, else their anonymous label."""
    name = meta.get("trained_by")
    return name if isinstance(name, str) and name else anonymous_label(owner_of(meta))
