"""Whole models: capture changes nothing, causality, padding, and KV-cache decoding against the full forward."""
import pytest
import torch

from attnviz import TransformerConfig, build_model, capture, pattern_names

PAD, V, S, T, B = 0, 11, 7, 6, 3
KINDS = ["encoder-decoder", "language-model"]


def make_model(kind, **overrides):
    torch.manual_seed(0)
    settings = dict(src_vocab_size=V, tgt_vocab_size=V, d_model=16, n_heads=4, n_encoder_layers=2,
                    n_decoder_layers=2, d_ff=32, max_len=32, pad_id=PAD)
    if kind == "language-model":
        settings["n_encoder_layers"] = 0
    settings.update(overrides)
    return build_model(TransformerConfig(**settings)).eval()


def batch(src_len=S, tgt_len=T):
    """Source rows with trailing padding (row 0 unpadded) and target rows without padding."""
    g = torch.Generator().manual_seed(1)
    src = torch.randint(1, V, (B, src_len), generator=g)  # (B, S)
    src[1, src_len - 2:] = PAD
    src[2, src_len - 4:] = PAD
    tgt = torch.randint(1, V, (B, tgt_len), generator=g)  # (B, T)
    return src, tgt


def run(model, src, tgt):
    return model(src, tgt) if model.has_encoder else model(tgt)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("norm_first", [True, False])
def test_capture_changes_no_logits(kind, norm_first):
    model = make_model(kind, norm_first=norm_first)
    src, tgt = batch()
    plain = run(model, src, tgt)
    with capture(model) as cache:
        captured = run(model, src, tgt)
    torch.testing.assert_close(captured, plain, atol=1e-5, rtol=0)
    assert set(cache) == set(pattern_names(model))
    expected = {"decoder.layers.0.self_attn.hook_pattern", "decoder.layers.1.self_attn.hook_pattern"}
    if kind == "encoder-decoder":
        expected |= {f"{side}.layers.{i}.{attn}.hook_pattern" for side, attn in
                     [("encoder", "self_attn"), ("decoder", "cross_attn")] for i in range(2)}
    assert set(cache) == expected


@pytest.mark.parametrize("kind", KINDS)
def test_patterns_are_distributions_that_respect_masks(kind):
    model = make_model(kind)
    src, tgt = batch()
    with capture(model) as cache:
        run(model, src, tgt)
    padded_keys = (src == PAD)[:, None, None, :]  # (B, 1, 1, S)
    for name, pattern in cache.items():  # (B, H, Tq, Tk)
        torch.testing.assert_close(pattern.sum(-1), torch.ones(pattern.shape[:-1]), msg=name)
        if ".self_attn" in name and name.startswith("decoder"):
            future = torch.ones(T, T, dtype=torch.bool).triu(1)
            assert (pattern[..., future] == 0).all(), name
        else:  # encoder self-attention and cross-attention read the source: padding gets nothing
            assert (pattern.masked_select(padded_keys) == 0).all(), name


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("norm_first", [True, False])
@pytest.mark.parametrize("use_capture", [False, True])
def test_decoder_output_never_depends_on_later_inputs(kind, norm_first, use_capture):
    model = make_model(kind, norm_first=norm_first)
    src, tgt = batch()
    embedded = {}

    def keep_grad(module, inputs, output):  # the decoder's input embeddings become a leaf we differentiate by
        output.retain_grad()
        embedded["x"] = output

    handle = model.decoder.embed.register_forward_hook(keep_grad)
    try:
        if use_capture:
            with capture(model):
                logits = run(model, src, tgt)
        else:
            logits = run(model, src, tgt)
    finally:
        handle.remove()
    x = embedded["x"]  # (B, T, D)
    for t in range(T):
        (grad,) = torch.autograd.grad(logits[:, t].sum(), x, retain_graph=True)  # (B, T, D)
        assert (grad[:, t + 1:] == 0).all(), f"output {t} depends on a later input"
        assert (grad[:, : t + 1].abs().sum(-1) > 0).all(), f"output {t} ignores an earlier input"


@pytest.mark.parametrize("norm_first", [True, False])
def test_extra_padding_changes_nothing_at_real_positions(norm_first):
    model = make_model("encoder-decoder", norm_first=norm_first)
    src, tgt = batch()
    longer = torch.cat([src, torch.full((B, 5), PAD)], dim=1)  # (B, S + 5)
    torch.testing.assert_close(model(longer, tgt), model(src, tgt), atol=1e-5, rtol=0)
    real = src != PAD  # (B, S)
    memory, longer_memory = model.encode(src).memory, model.encode(longer).memory[:, :S]  # (B, S, D)
    torch.testing.assert_close(longer_memory[real], memory[real], atol=1e-5, rtol=0)


def step_all(model, state, tokens):
    """decode_step over every column of (B, n) tokens; returns (B, n, V) logits and the last state."""
    logits = []
    for t in range(tokens.shape[1]):
        step_logits, state = model.decode_step(state, tokens[:, t])
        logits.append(step_logits)
    return torch.stack(logits, dim=1), state


def start(model, src, prefix):
    return model.encode(src) if model.has_encoder else model.encode(prefix)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("norm_first", [True, False])
@pytest.mark.parametrize("positional", ["sinusoidal", "learned", "none"])
def test_kv_cache_decoding_equals_full_forward(kind, norm_first, positional):
    model = make_model(kind, norm_first=norm_first, positional=positional)
    src, tgt = batch()
    with torch.no_grad():
        full = run(model, src, tgt)  # (B, T, V)
        stepped, state = step_all(model, start(model, src, tgt[:, :0]), tgt)
    torch.testing.assert_close(stepped, full, atol=1e-5, rtol=0)
    assert state.position == T


@pytest.mark.parametrize("norm_first", [True, False])
@pytest.mark.parametrize("prefix_len", [1, 4])
def test_language_model_prefix_then_steps_equals_full_forward(norm_first, prefix_len):
    model = make_model("language-model", norm_first=norm_first)
    _, tokens = batch()
    with torch.no_grad():
        full = model(tokens)  # (B, T, V)
        state = model.encode(tokens[:, :prefix_len])
        assert state.position == prefix_len
        stepped, _ = step_all(model, state, tokens[:, prefix_len:])
    torch.testing.assert_close(stepped, full[:, prefix_len:], atol=1e-5, rtol=0)


@pytest.mark.parametrize("kind", KINDS)
def test_state_select_reorders_rows(kind):
    model = make_model(kind)
    src, tgt = batch()
    index = torch.tensor([2, 0, 0, 1])
    with torch.no_grad():
        full = run(model, src[index], tgt[index])  # (4, T, V)
        _, state = step_all(model, start(model, src, tgt[:, :0]), tgt[:, :3])
        state = state.select(index)
        stepped, _ = step_all(model, state, tgt[index, 3:])
    torch.testing.assert_close(stepped, full[:, 3:], atol=1e-5, rtol=0)


@pytest.mark.parametrize("kind", KINDS)
def test_old_state_stays_valid_after_decode_step(kind):
    model = make_model(kind)
    src, tgt = batch()
    other = (tgt + 1) % (V - 1) + 1  # different tokens, never PAD
    with torch.no_grad():
        _, state = step_all(model, start(model, src, tgt[:, :0]), tgt[:, :2])
        first, _ = step_all(model, state, tgt[:, 2:])
        second, _ = step_all(model, state, other[:, 2:])  # branch again from the same old state
        again, _ = step_all(model, state, tgt[:, 2:])
        branched = torch.cat([tgt[:, :2], other[:, 2:]], dim=1)
        full = run(model, src, branched)
    torch.testing.assert_close(again, first, atol=0, rtol=0)
    torch.testing.assert_close(second, full[:, 2:], atol=1e-5, rtol=0)


def test_sequence_longer_than_max_len_is_a_clear_error():
    model = make_model("language-model", max_len=8)
    with pytest.raises(ValueError, match="max_len"):
        model(torch.ones(1, 9, dtype=torch.long))


def test_tied_embeddings_share_one_tensor():
    model = make_model("encoder-decoder", tie_embeddings=True)
    assert model.lm_head.weight is model.decoder.embed.tokens.weight


def test_an_all_padding_source_row_changes_no_other_row_and_capture_changes_nothing():
    model = make_model("encoder-decoder")
    src, tgt = batch()
    empty = src.clone()
    empty[1] = PAD  # one source is nothing but padding
    with torch.no_grad():
        plain = model(empty, tgt)
        with capture(model) as cache:
            captured = model(empty, tgt)
    assert torch.isfinite(plain).all()
    torch.testing.assert_close(captured, plain, atol=1e-5, rtol=0)
    torch.testing.assert_close(plain[[0, 2]], model(src, tgt)[[0, 2]].detach(), atol=1e-5, rtol=0)
    assert (cache["decoder.layers.0.cross_attn.hook_pattern"][1] == 0).all()


def test_d_ff_0_is_an_attention_only_transformer():
    """d_ff=0 drops the feed-forward sub-layers: the same as a model whose feed-forward weights are all zero."""
    torch.manual_seed(0)
    with_ff = build_model(TransformerConfig(12, 12, d_model=16, n_heads=2, n_encoder_layers=0, n_decoder_layers=2,
                                            d_ff=8)).eval()
    attention_only = build_model(TransformerConfig(12, 12, d_model=16, n_heads=2, n_encoder_layers=0,
                                                   n_decoder_layers=2, d_ff=0)).eval()
    assert not [name for name, _ in attention_only.named_parameters() if ".ff." in name or "norm3" in name]
    with torch.no_grad():
        for name, p in with_ff.named_parameters():
            if ".ff." in name:
                p.zero_()
        attention_only.load_state_dict({k: v for k, v in with_ff.state_dict().items()
                                        if ".ff." not in k and "norm3" not in k})
    tokens = torch.randint(4, 12, (3, 7))
    torch.testing.assert_close(attention_only(tokens), with_ff(tokens), atol=1e-6, rtol=0)


@pytest.mark.parametrize("kind", KINDS)
def test_learned_positional_table_keeps_its_own_start_and_sinusoidal_is_untouched(kind):
    """A learned table starts as N(0, 0.02) (Xavier-uniform on a (128, 256) table would give std ~0.102)."""
    import math
    from attnviz.models.positional import PositionalEncoding
    model = make_model(kind, positional="learned", d_model=256, n_heads=4, max_len=128)
    tables = [m.table for m in model.modules() if isinstance(m, PositionalEncoding)]
    assert len(tables) == (2 if kind == "encoder-decoder" else 1)
    for table in tables:
        assert isinstance(table, torch.nn.Parameter) and table.std().item() == pytest.approx(0.02, rel=0.05)
    sinusoidal = make_model(kind, d_model=256, n_heads=4, max_len=128)
    for m in sinusoidal.modules():
        if isinstance(m, PositionalEncoding):  # the closed form, not re-initialised
            pos, i = 5, 3
            assert m.table[pos, 2 * i].item() == pytest.approx(math.sin(pos / 10000 ** (2 * i / 256)), abs=1e-6)
            assert m.table[pos, 2 * i + 1].item() == pytest.approx(math.cos(pos / 10000 ** (2 * i / 256)), abs=1e-6)


def copied_into_torch_transformer(model):
    """torch.nn.Transformer (pre-LN, batch_first) holding `model`'s weights, layer by layer."""
    import warnings
    c = model.config
    with warnings.catch_warnings():  # "enable_nested_tensor is True, but self.use_nested_tensor is False"
        warnings.simplefilter("ignore", UserWarning)
        reference = torch.nn.Transformer(c.d_model, c.n_heads, c.n_encoder_layers, c.n_decoder_layers, c.d_ff,
                                         dropout=0.0, batch_first=True, norm_first=True).eval()

    def attention(ours, theirs):
        theirs.in_proj_weight.copy_(torch.cat([ours.q_proj.weight, ours.k_proj.weight, ours.v_proj.weight]))
        theirs.in_proj_bias.copy_(torch.cat([ours.q_proj.bias, ours.k_proj.bias, ours.v_proj.bias]))
        theirs.out_proj.load_state_dict(ours.out_proj.state_dict())

    def common(ours, theirs):
        theirs.linear1.load_state_dict(ours.ff.linear1.state_dict())
        theirs.linear2.load_state_dict(ours.ff.linear2.state_dict())
        theirs.norm1.load_state_dict(ours.norm1.state_dict())
        theirs.norm2.load_state_dict(ours.norm2.state_dict())
        attention(ours.self_attn, theirs.self_attn)

    with torch.no_grad():
        for ours, theirs in zip(model.encoder.layers, reference.encoder.layers):
            common(ours, theirs)
        for ours, theirs in zip(model.decoder.layers, reference.decoder.layers):
            common(ours, theirs)
            attention(ours.cross_attn, theirs.multihead_attn)
            theirs.norm3.load_state_dict(ours.norm3.state_dict())
        reference.encoder.norm.load_state_dict(model.encoder.norm.state_dict())
        reference.decoder.norm.load_state_dict(model.decoder.norm.state_dict())
    return reference


def test_pre_ln_encoder_decoder_equals_torch_nn_transformer_with_copied_weights():
    """The whole model against torch.nn.Transformer: embeddings by hand (tokens * sqrt(d) + the sin/cos formula),
    the same padded sources, a causal target mask, the same output projection."""
    import math
    model = make_model("encoder-decoder", norm_first=True)
    with torch.no_grad():  # LayerNorm gains and biases away from their 1/0 start, so copying them matters
        for name, p in model.named_parameters():
            if "norm" in name:
                p.add_(0.3 * torch.randn_like(p))
    reference = copied_into_torch_transformer(model)
    src, tgt = batch()
    D = model.config.d_model

    def embed(ids, weight):
        position = torch.arange(ids.shape[1], dtype=torch.float64)[:, None]  # (T, 1)
        angle = position / 10000 ** (torch.arange(0, D, 2, dtype=torch.float64) / D)  # (T, D/2)
        table = torch.stack([angle.sin(), angle.cos()], -1).flatten(1).float()  # (T, D): sin, cos interleaved
        return weight[ids] * math.sqrt(D) + table  # (B, T, D)

    source, target = embed(src, model.encoder.embed.tokens.weight), embed(tgt, model.decoder.embed.tokens.weight)
    padding = src == PAD  # (B, S)
    causal = torch.ones(T, T, dtype=torch.bool).triu(1)  # (T, T) True = blocked
    with torch.no_grad():
        hidden = reference(source, target, tgt_mask=causal, src_key_padding_mask=padding,
                           memory_key_padding_mask=padding)  # (B, T, D)
        unmasked = reference(source, target, tgt_mask=causal)  # (B, T, D): padding read as tokens
        expected = hidden @ model.lm_head.weight.T  # (B, T, V)
        actual = model(src, tgt)
    assert padding.any() and not torch.allclose(actual, unmasked @ model.lm_head.weight.T, atol=1e-3)  # it matters
    torch.testing.assert_close(actual, expected, atol=1e-5, rtol=1e-5)



@pytest.mark.parametrize("kind", KINDS)
def test_the_decoder_hands_sdpa_is_causal_for_a_full_pass_and_a_mask_for_cached_steps(kind, monkeypatch):
    """Full forward: the decoder's self-attention uses SDPA's is_causal (no mask tensor, so flash kernels may run)
    and gives the logits of the boolean-mask path and of the explicit path; a cached step gets no causal flag."""
    import attnviz.models.attention as attention

    sdpa, calls = torch.nn.functional.scaled_dot_product_attention, []
    monkeypatch.setattr(attention.F, "scaled_dot_product_attention",
                        lambda *a, **k: calls.append((k.get("is_causal", False), k.get("attn_mask") is None))
                        or sdpa(*a, **k))
    model = make_model(kind)
    src, tgt = batch()
    flagged = run(model, src, tgt)
    assert [call for call in calls if call[0]] == [(True, True)] * model.config.n_decoder_layers
    with capture(model):
        explicit = run(model, src, tgt)
    state = model.encode(src) if model.has_encoder else model.encode(tgt[:, :2])  # an LM prefill: a full pass
    calls.clear()
    model.decode_step(state, tgt[:, 0] if model.has_encoder else tgt[:, 2])
    assert calls and not any(flag for flag, _ in calls)
    forward = attention.MultiHeadAttention.forward
    monkeypatch.setattr(attention.MultiHeadAttention, "forward",
                        lambda self, *a, is_causal=False, **k: forward(self, *a, **k))  # the boolean mask only
    calls.clear()
    boolean = run(model, src, tgt)
    assert calls and not any(flag for flag, _ in calls)
    torch.testing.assert_close(flagged, boolean, atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(flagged, explicit, atol=1e-6, rtol=1e-5)
