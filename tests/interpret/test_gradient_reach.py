"""gradient_by_distance against torch.autograd.functional.jacobian on tiny models (plain RNN, LSTM, LSTM with
attention, Transformer), and what it leaves behind on a shared model: nothing."""
import pytest
import torch
from torch.autograd.functional import jacobian

from attnviz import build_model
from attnviz.data.tasks import make_task
from attnviz.interpret.gradient_reach import gradient_by_distance, text_gradient_by_distance
from attnviz.models.architectures import model_config
from attnviz.models.config import RNNConfig, TransformerConfig
from attnviz.training import checkpoint, checkpoint_folder

VOCAB, PAD = 12, 0


def tiny(kind):
    torch.manual_seed(0)
    vocab = dict(src_vocab_size=VOCAB, tgt_vocab_size=VOCAB, pad_id=PAD)
    if kind == "transformer":
        config = TransformerConfig(**vocab, d_model=16, n_heads=2, n_encoder_layers=2, n_decoder_layers=1, d_ff=32)
    else:
        cell, _, attention = kind.partition("+")
        config = RNNConfig(**vocab, cell=cell, attention=attention or "none", embed_dim=8, hidden_size=16)
    return build_model(config).eval()


def reference_norms(model, src, tgt_in, token, of):
    """||d score / d embed(src_j)|| from the full Jacobian of the score w.r.t. the source embeddings, the
    embeddings put in by a plain module hook."""
    embedding = model.encoder.embed.tokens if hasattr(model.encoder.embed, "tokens") else model.encoder.embed
    start = embedding(src).detach()  # (1, S, E)

    def score(x):
        handle = embedding.register_forward_hook(lambda module, args, output: x)
        try:
            logits = model(src, tgt_in)[0, -1]  # (V,)
        finally:
            handle.remove()
        return logits[token] if of == "logit" else logits.log_softmax(-1)[token]

    return jacobian(score, start)[0].norm(dim=-1)  # (S,)


@pytest.mark.parametrize("kind", ["rnn", "lstm", "lstm+bahdanau", "gru+luong-general", "transformer"])
@pytest.mark.parametrize("of", ["logit", "log_prob"])
def test_gradient_norms_equal_the_jacobians(kind, of):
    model = tiny(kind)
    src, tgt_in = torch.tensor([[3, 4, 5, 6, 7, 8, 2]]), torch.tensor([[1, 9, 10, 11]])
    frame = gradient_by_distance(model, src, tgt_in, of=of)
    with torch.no_grad():
        chosen = int(model(src, tgt_in)[0, -1].argmax())
    expected = reference_norms(model, src, tgt_in, chosen, of)
    assert frame["gradient"].to_numpy() == pytest.approx(expected.numpy(), rel=1e-4, abs=1e-9)
    S, T = 7, 4
    assert list(frame["position"]) == list(range(S))
    assert list(frame["distance"]) == [S + T - 1 - j for j in range(S)]  # the last output is at step S + T - 1
    assert frame["relative"].max() == pytest.approx(1.0)
    assert frame["relative"].to_numpy() == pytest.approx((expected / expected.max()).numpy(), rel=1e-4)


def test_a_chosen_token_and_one_dimensional_ids():
    model = tiny("lstm+bahdanau")
    src, tgt_in = torch.tensor([3, 4, 5, 2]), torch.tensor([1, 6])
    frame = gradient_by_distance(model, src, tgt_in, token=7)
    expected = reference_norms(model, src[None], tgt_in[None], 7, "logit")
    assert frame["gradient"].to_numpy() == pytest.approx(expected.numpy(), rel=1e-4)


def test_the_shared_model_is_left_as_it_was():
    model = tiny("transformer")
    src, tgt_in = torch.tensor([[3, 4, 5, 2]]), torch.tensor([[1, 6, 7]])
    with torch.no_grad():
        before = model(src, tgt_in)
    gradient_by_distance(model, src, tgt_in)
    assert all(p.grad is None for p in model.parameters())  # only the embeddings' gradient was taken
    assert not model.encoder.embed.tokens._forward_hooks  # the hook is gone
    with torch.no_grad():
        assert torch.equal(model(src, tgt_in), before)


def test_refuses_a_batch_and_a_language_model():
    with pytest.raises(ValueError, match="one sequence"):
        gradient_by_distance(tiny("lstm"), torch.tensor([[3, 4], [5, 6]]), torch.tensor([[1], [1]]))
    with pytest.raises(ValueError, match="choose 'logit' or 'log_prob'"):
        gradient_by_distance(tiny("lstm"), torch.tensor([[3, 4]]), torch.tensor([[1]]), of="probability")
    lm = build_model(TransformerConfig(src_vocab_size=VOCAB, tgt_vocab_size=VOCAB, pad_id=PAD, d_model=8, n_heads=2,
                                       n_encoder_layers=0, n_decoder_layers=1, d_ff=16))
    with pytest.raises(ValueError, match="no source"):
        gradient_by_distance(lm, torch.tensor([[3, 4]]), torch.tensor([[1, 3]]))


def test_texts_are_measured_at_the_targets_last_token():
    task = make_task("reverse", min_len=2, max_len=6, alphabet="abcdef", n_train=10, n_val=2, n_test=2)
    torch.manual_seed(0)
    model = build_model(model_config("lstm+bahdanau", task.tokenizer, embed_dim=8, hidden_size=16)).eval()
    frame = text_gradient_by_distance(model, task.tokenizer, "abcd", "dcba")
    ids = {c: task.tokenizer.encode(c)[0] for c in "abcd"}
    src = torch.tensor([[ids["a"], ids["b"], ids["c"], ids["d"], task.tokenizer.eos_id]])
    tgt_in = torch.tensor([[task.tokenizer.bos_id, ids["d"], ids["c"], ids["b"]]])  # the step that writes "a"
    expected = reference_norms(model, src, tgt_in, ids["a"], "logit")
    assert frame["gradient"].to_numpy() == pytest.approx(expected.numpy(), rel=1e-4)
    assert list(frame["distance"]) == [5 + 4 - 1 - j for j in range(5)]
    with pytest.raises(ValueError, match="target is empty"):
        text_gradient_by_distance(model, task.tokenizer, "abcd", "")


def test_on_the_shipped_models_the_rnns_gradient_fades_and_attention_reaches_far():
    """Reversing 20 letters, the last output letter is the first input letter, 40 time steps back. The plain tanh
    RNN's gradient falls by more than ten times from 20 to 40 steps; both attention models' gradients at the far
    letter they must copy are larger than at the nearest letter."""
    text = "abcdefghijklmnopqrst"
    far_near = {}
    for name in ("reverse-long-rnn", "reverse-long-transformer", "reverse-long-lstm-bahdanau"):
        shipped = checkpoint.load_checkpoint(checkpoint_folder.SHIPPED_DIR / name)
        frame = text_gradient_by_distance(shipped.model, shipped.task().tokenizer, text, text[::-1])
        gradient = frame.set_index("distance")["gradient"]
        far_near[name] = gradient[40] / gradient[21]  # the first letter / the last letter (distance 20 is EOS)
    assert far_near["reverse-long-rnn"] < 0.1
    assert far_near["reverse-long-transformer"] > 1 and far_near["reverse-long-lstm-bahdanau"] > 1
