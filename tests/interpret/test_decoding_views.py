"""The windowed beam tree, checked against the whole tree it is cut from."""
import torch

from attnviz import TransformerConfig, build_model
from attnviz.data.tokenizers import CharTokenizer
from attnviz.decoding.search import beam_search
from attnviz.interpret.decoding_views import beam_tree

TOKENIZER = CharTokenizer("abcdefg")  # 4 specials + 7 characters: 11 ids


def long_search():
    """Beam search over 14 steps of a small random language model (a seed whose beams do not end early)."""
    torch.manual_seed(0)
    model = build_model(TransformerConfig(src_vocab_size=11, tgt_vocab_size=11, d_model=16, n_heads=2,
                                          n_encoder_layers=0, n_decoder_layers=1, d_ff=32, max_len=24)).eval()
    return beam_search(model, TOKENIZER, [TOKENIZER.bos_id, 5, 6], max_new_tokens=14, width=3, n_best=3)


def path(node, by_id):
    """Tokens from a node's root down to it."""
    return ([] if node["parent"] is None else path(by_id[node["parent"]], by_id)) + [node["token"]]


def test_a_window_of_the_tree_holds_its_steps_under_the_beams_they_extend():
    beam = long_search()
    assert len(beam.steps) == 14
    whole = beam_tree(beam, TOKENIZER)
    whole_by_id = {node["id"]: node for node in whole}
    window = beam_tree(beam, TOKENIZER, steps=(6, 11))
    by_id = {node["id"]: node for node in window}
    roots = [node for node in window if node["parent"] is None]
    assert {node["step"] for node in roots} == {5} and all(node["fate"] == "kept" for node in roots)
    assert sorted(node["id"] for node in window if node["step"] > 5) == sorted(
        node["id"] for node in whole if 6 <= node["step"] <= 11)  # every candidate of steps 6 to 11, no other
    for node in window:  # the same node as in the whole tree; its path from its root ends the whole tree's path
        original = whole_by_id[node["id"]]
        assert {k: v for k, v in node.items() if k != "parent"} == {k: v for k, v in original.items() if k != "parent"}
        assert path(original, whole_by_id)[-len(path(node, by_id)):] == path(node, by_id)
        assert len(path(node, by_id)) == node["step"] - 4
    assert beam_tree(beam, TOKENIZER, steps=(1, 14)) == whole  # a window over every step is the whole tree
