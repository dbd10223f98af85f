"""A step-by-step decoding as the decoding page builds it up, and its form in a link.

With the model and the input, a decoding is fully determined by its method, the number of steps taken, the tokens
forced, and the settings. Sampling settings may change mid-way: new ones apply from the next step on and the steps
taken keep theirs (`sample(changes=...)`), so a sampling plan holds the settings of each stretch of steps. The page
keeps only a `Plan`, in the session and in the URL, and decodes it again (cached) on every run; seeded sampling
repeats exactly, so a reload or a shared link rebuilds the same tokens and probabilities.

In the URL, steps count from 1 as on the page: `steps=5`, `forced=2:17` (step 2 forced to token id 17) and, for
sampling, `segments=1:1.0,0,1.0,0;4:1.5,0,1.0,0`: from step 1 temperature 1.0, top-k 0 (all), top-p 1.0 (all) and
seed 0, from step 4 temperature 1.5 and the rest as before. Floats are written with `repr`, which reads back exactly.
What a link gets wrong, and the settings in words, are said in the session's language (attnviz.i18n).
"""
from dataclasses import dataclass

from attnviz.decoding.search import METHODS, sample
from attnviz.i18n import _

SAMPLING = ("temperature", "top_k", "top_p", "seed")  # what a sampling stretch records, in the URL's order
LIMITS = {"temperature": (0.0, 2.0), "top_p": (0.05, 1.0), "seed": (0, 2**31 - 1), "width": (1, 6),
          "length_penalty": (0.0, 2.0), "top_k": (0, None)}  # top_k's top is the vocabulary size


def parse_number(text, name, low, high):
    """`text` as the int (seed, top_k, width, steps) or float `name` takes, within [low, high], or a ValueError.
    `name` is a setting's name (code) or says what the number is in the session's language."""
    integer = isinstance(low, int)
    try:
        value = int(text) if integer else float(text)
    except ValueError:
        refusal = _("{name}={text} is not a whole number") if integer else _("{name}={text} is not a number")
        raise ValueError(refusal.format(name=name, text=repr(text))) from None
    if not low <= value <= high:  # also refuses nan
        raise ValueError(_("{name}={text} is outside {low} to {high}").format(name=name, text=repr(text), low=low,
                                                                             high=high))
    return value


def sampling_settings(temperature, top_k, top_p, seed):
    """The arguments of `sample` from the widgets' values: top-k 0 and top-p 1 mean no limit (None)."""
    return dict(temperature=temperature, top_k=top_k or None, top_p=top_p if top_p < 1 else None, seed=seed)


@dataclass(frozen=True)
class Plan:
    """What a step-by-step decoding is made of. Immutable: every change makes a new plan."""
    method: str  # "greedy" | "sample" | "beam"
    taken: int  # steps taken: the plan decodes up to this many tokens
    stretches: tuple  # ((first step, sorted settings items), ...) from step 0 on: what each stretch decodes with
    forced: tuple = ()  # ((step, token id), ...) in step order, steps from 0

    @classmethod
    def start(cls, method, settings, taken=1, forced=()):
        """A plan decoding every step with `settings` (`METHODS[method]`'s keyword arguments)."""
        return cls(method, taken, ((0, tuple(sorted(settings.items()))),), tuple(sorted(dict(forced).items())))

    def settings_at(self, step):
        """The settings step `step` (from 0) decodes with."""
        return dict(next(items for first, items in reversed(self.stretches) if first <= step))

    @property
    def next_settings(self):
        """The settings the next step takes unless they change: those of the last stretch."""
        return dict(self.stretches[-1][1])

    def follow(self, method, settings):
        """This plan under the method and settings chosen now. Another method decodes the steps taken again with it.
        Greedy decoding has no settings, and beam search ranks whole outputs, so a new width or length penalty
        searches the steps taken again; only sampling keeps the settings of the steps taken (see `go_to`)."""
        if method == self.method == "sample":
            return self
        return Plan.start(method, settings, self.taken, self.forced)

    def pending(self, settings):
        """Whether the next step would change to `settings` (sampling only): the page says so."""
        return self.method == "sample" and settings != self.next_settings

    def go_to(self, taken, settings):
        """The plan after taking steps up to `taken`; when sampling, the new steps take `settings`."""
        if taken <= self.taken or not self.pending(settings):
            return Plan(self.method, taken, self.stretches, self.forced).clamped(taken)
        return Plan(self.method, taken, self.stretches + ((self.taken, tuple(sorted(settings.items()))),), self.forced)

    def clamped(self, most):
        """At most `most` steps: later forced tokens and stretches that would start after them are dropped."""
        taken = min(self.taken, most)
        stretches = tuple(s for i, s in enumerate(self.stretches) if i == 0 or s[0] < taken)
        return Plan(self.method, taken, stretches, tuple((s, v) for s, v in self.forced if s < taken))

    def force(self, step, token):
        """`token` at `step` (from 0): later forced tokens go, and decoding goes on from it."""
        forced = tuple((s, v) for s, v in self.forced if s < step) + ((step, token),)
        return Plan(self.method, max(self.taken, step + 1), self.stretches, forced)

    def replay(self, settings):
        """The steps taken decoded again, every one with `settings` (the forced tokens stay)."""
        return Plan.start(self.method, settings, self.taken, self.forced)

    def decode(self, model, tokenizer, ids):
        """The traced `Decoded` of this plan on `ids` (the source or the prompt)."""
        first, forced = self.settings_at(0), dict(self.forced)
        if self.method == "sample":
            changes = {step: dict(items) for step, items in self.stretches[1:]}
            return sample(model, tokenizer, ids, self.taken, forced=forced, changes=changes, **first)
        return METHODS[self.method](model, tokenizer, ids, max_new_tokens=self.taken, forced=forced, **first)

    def params(self):
        """The URL's form of this plan, {name: text or None (not in the URL)}."""
        segments = ";".join(f"{first + 1}:" + ",".join(url_value(name, dict(items)[name]) for name in SAMPLING)
                            for first, items in self.stretches) if self.method == "sample" else None
        return {"steps": str(self.taken), "forced": ",".join(f"{s + 1}:{v}" for s, v in self.forced) or None,
                "segments": segments}

    @classmethod
    def from_params(cls, params, method, settings, most, tokens, vocab_size):
        """(plan, notes) from a URL's `params` for `method` whose settings are `settings` now, at most `most` steps,
        forcing only ids in `tokens`. A value that does not fit falls back (no forced tokens, one stretch with
        `settings`, step 1), and a note says which and why."""
        notes, plan = [], cls.start(method, settings)
        try:
            plan = cls.start(method, settings, parse_number(params.get("steps", "1"), "steps", 1, most))
        except ValueError as error:
            notes.append(_("The link's {error}: starting at step 1.").format(error=error))
        if method == "sample" and "segments" in params:
            try:
                plan = Plan(method, plan.taken, parse_segments(params["segments"], plan.taken, vocab_size))
            except ValueError as error:
                notes.append(_("The link's segments={segments} do not fit ({error}): every step samples with the "
                               "settings shown.").format(segments=repr(params["segments"]), error=error))
        try:
            forced = parse_forced(params.get("forced", ""), plan.taken, tokens)
            plan = Plan(method, plan.taken, plan.stretches, tuple(sorted(forced.items())))
        except ValueError as error:
            notes.append(_("The link's forced={forced} does not fit ({error}): no token is forced.").format(
                forced=repr(params["forced"]), error=error))
        return plan, notes


def url_value(name, value):
    """One sampling setting as the URL writes it: no limit as the widgets show it (top-k 0, top-p 1.0)."""
    if value is None:
        value = {"top_k": 0, "top_p": 1.0}[name]
    return repr(value)


def parse_segments(text, taken, vocab_size):
    """The stretches of a `segments=` value, each starting after the one before, the first at step 1."""
    stretches = []
    for part in text.split(";"):
        first, _colon, values = part.partition(":")
        first = parse_number(first, _("a segment's first step"), 1, taken) - 1
        if (first != 0) if not stretches else first <= stretches[-1][0]:
            raise ValueError(_("segments start at step 1, each after the one before"))
        values = values.split(",")
        if len(values) != len(SAMPLING):
            raise ValueError(_("a segment holds {settings}").format(settings=", ".join(SAMPLING)))
        limits = dict(LIMITS, top_k=(0, vocab_size))
        numbers = [parse_number(v, name, *limits[name]) for name, v in zip(SAMPLING, values)]
        stretches.append((first, tuple(sorted(sampling_settings(*numbers).items()))))
    return tuple(stretches)


def parse_forced(text, taken, tokens):
    """{step from 0: token id} of a `forced=` value: step:id pairs, steps from 1 to `taken`, ids among `tokens`."""
    forced = {}
    for part in filter(None, text.split(",")):
        step, _colon, token = part.partition(":")
        step = parse_number(step, _("a forced step"), 1, taken) - 1
        token = parse_number(token, _("a forced token id"), 0, max(tokens))
        if token not in tokens:
            raise ValueError(_("token id {token} cannot be forced").format(token=token))
        forced[step] = token
    return forced


def describe_sampling(settings):
    """Sampling settings in words, e.g. "temperature 1.5, top-k 5, no top-p, seed 0" (in the session's language)."""
    parts = [_("temperature {temperature}").format(temperature=f"{settings['temperature']:g}"),
             _("top-k {top_k}").format(top_k=settings["top_k"]) if settings.get("top_k") else _("no top-k"),
             _("top-p {top_p}").format(top_p=f"{settings['top_p']:g}") if settings.get("top_p") else _("no top-p")]
    seed = [_("seed {seed}").format(seed=settings["seed"])] if "seed" in settings else []
    return _(", ").join(parts + seed)


def stretch_notes(plan):
    """One line per stretch of a sampling plan's steps taken: which steps (from 1), and their settings."""
    ends = [first for first, _settings in plan.stretches[1:]] + [plan.taken]
    return [(_("steps {first}–{last}: {settings}") if end > first + 1 else _("step {first}: {settings}")).format(
        first=first + 1, last=end, settings=describe_sampling(dict(items))) for (first, items), end in
        zip(plan.stretches, ends)]
