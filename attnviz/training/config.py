"""The training settings: a frozen, self-validating config, as a checkpoint records it (refusals in the session's
language, attnviz.i18n)."""
from dataclasses import dataclass

from attnviz.checks import check_choice, check_number, check_whole
from attnviz.i18n import _
from attnviz.models.config import ConfigBase


@dataclass(frozen=True)
class TrainConfig(ConfigBase):
    steps: int = 1000
    batch_size: int = 64
    lr: float = 3e-3
    warmup: int = 50  # steps of linear warm-up, then cosine decay to 10% of lr at `steps`
    weight_decay: float = 0.01
    label_smoothing: float = 0.0
    clip: float = 1.0  # gradient-norm clipping (0 = off)
    seed: int = 0
    time_budget: float = 0.0  # seconds of training (0 = no limit): stops early, keeping the schedule
    target_exact_match: float = 0.0  # stop once validation exact match reaches this (0 = never)
    eval_every: int = 100
    eval_examples: int = 500  # validation examples per evaluation
    snapshot_every: int = 50  # attention snapshots of the probe inputs (0 = none)
    device: str = "auto"

    def __post_init__(self):
        check_whole(self, ["steps", "eval_every", "eval_examples"], maximum=10_000_000)
        check_whole(self, ["batch_size"], maximum=4096)
        check_whole(self, ["warmup", "snapshot_every"], minimum=0, maximum=10_000_000)
        check_whole(self, ["seed"], minimum=0, maximum=2**63 - 1)
        check_number(self, "lr", 0, 1, _("use a learning rate in (0, 1], e.g. 3e-3"), low_open=True)
        for name in ("weight_decay", "clip", "time_budget"):
            check_number(self, name, 0, float("inf"), _("use 0 or more"))
        check_number(self, "label_smoothing", 0, 1, _("use a value in [0, 1)"), high_open=True)
        check_number(self, "target_exact_match", 0, 1, _("use a fraction in [0, 1]"))
        check_choice(self, "device", ("auto", "cpu", "cuda", "mps"))
