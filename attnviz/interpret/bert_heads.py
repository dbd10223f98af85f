"""Where a BERT's heads look (Clark et al., 2019): weight on [CLS], [SEP] and punctuation beside the generic
statistics, one row per head of a MiniLM run."""
import unicodedata

import pandas as pd
import torch

from attnviz.i18n import N_
from attnviz.interpret.head_stats import STATS, attention_to, head_stats
from attnviz.interpret.patterns import parse_pattern_name


# Where BERT's heads look (Clark et al., 2019, "What does BERT look at?"), then the generic statistics.
# The meanings are English, marked for the catalog: a page shows them as `_(HEAD_STATS[name])`.
BERT_STATS = {
    "cls": N_("Mean weight on [CLS], the first token. A head with nothing to do parks its weight on a special "
              "token; this MiniLM mostly parks it on [CLS]."),
    "sep": N_("Mean weight on [SEP], the last token. In BERT-base many middle-layer heads park most of their "
              "weight there (Clark et al., 2019)."),
    "punctuation": N_("Mean weight on punctuation tokens (. , ! ? ...), which some heads use much like [SEP]."),
}
HEAD_STATS = BERT_STATS | {name: STATS[name] for name in
                           ("previous_token", "next_token", "entropy", "normalised_entropy", "distance", "max_weight")}


def is_punctuation(token):
    return all(unicodedata.category(char).startswith("P") for char in token)


def key_groups(run):
    """{"cls" | "sep" | "punctuation": (B, T) bool} of a `MiniLMRun`, True at those tokens (never at padding)."""
    tests = {"cls": lambda token: token == "[CLS]", "sep": lambda token: token == "[SEP]",
             "punctuation": is_punctuation}
    T = run.batch.ids.shape[1]
    return {group: torch.tensor([[test(token) for token in labels] + [False] * (T - len(labels))
                                 for labels in run.batch.labels]) for group, test in tests.items()}


def bert_head_stats(run):
    """One row per head of a `MiniLMRun`: kind, layer, head, module and the `HEAD_STATS` columns, each a mean over
    the real query tokens of every sentence in the batch (padding left out)."""
    padding = run.batch.attention_mask == 0  # (B, T)
    groups = key_groups(run)
    records = []
    for name, pattern in run.attentions.items():  # (B, H, T, T)
        kind, layer, module = parse_pattern_name(name)
        stats = head_stats(pattern, query_padding_mask=padding, key_padding_mask=padding)
        stats |= {group: attention_to(pattern, keys, padding) for group, keys in groups.items()}
        records += [dict(kind=kind, layer=layer, head=head, module=module,
                         **{stat: float(stats[stat][head]) for stat in HEAD_STATS})
                    for head in range(pattern.shape[1])]
    return pd.DataFrame.from_records(records, columns=["kind", "layer", "head", "module", *HEAD_STATS])
