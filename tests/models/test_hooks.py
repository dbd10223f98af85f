"""capture() and ablate(): hooks never outlive the with-block, ablation matches an independent reference,
capture during decode_step sees one query row per step, and threads sharing one model never see each other's."""
import threading

import pytest
import torch

import attnviz.models.attention as attention_module
from attnviz.models.hooks import forward_hooks

from attnviz import TransformerConfig, ablate, build_model, capture, hook_points, pattern_names

PAD, V, S, T, B = 0, 11, 6, 5, 2


def make_model(kind="encoder-decoder", d_model=16, d_ff=32):
    torch.manual_seed(0)
    config = TransformerConfig(src_vocab_size=V, tgt_vocab_size=V, d_model=d_model, n_heads=4, d_ff=d_ff, max_len=16,
                               n_encoder_layers=0 if kind == "language-model" else 2, n_decoder_layers=2)
    return build_model(config).eval()


def batch():
    g = torch.Generator().manual_seed(1)
    src = torch.randint(1, V, (B, S), generator=g)  # (B, S)
    src[1, -2:] = PAD
    return src, torch.randint(1, V, (B, T), generator=g)  # (B, T)


def run(model, src, tgt):
    return model(src, tgt) if model.has_encoder else model(tgt)


def hooked_modules(model):
    """Modules that still carry a hook, or hook points that still listen, after every with-block closed."""
    return [name for name, m in model.named_modules()
            if m._forward_hooks or m._forward_pre_hooks or m._backward_hooks or getattr(m, "active", False)]


def test_hook_point_names_come_from_the_module_tree():
    model = make_model()
    names = set(hook_points(model))
    assert "encoder.layers.0.self_attn.hook_pattern" in names
    assert "decoder.layers.1.cross_attn.hook_z" in names
    assert pattern_names(model) == [f"{layer}.{attention}.hook_pattern" for layer, attention in [
        ("encoder.layers.0", "self_attn"), ("encoder.layers.1", "self_attn"), ("decoder.layers.0", "self_attn"),
        ("decoder.layers.0", "cross_attn"), ("decoder.layers.1", "self_attn"), ("decoder.layers.1", "cross_attn")]]
    assert not any(point.active for point in hook_points(model).values())


def test_no_hook_remains_after_capture_and_ablate():
    model = make_model()
    src, tgt = batch()
    with capture(model, names=list(hook_points(model))):
        run(model, src, tgt)
    with ablate(model, {("decoder.layers.0.self_attn", 1), ("encoder.layers.1.self_attn", 0)}):
        run(model, src, tgt)
    assert hooked_modules(model) == []


@pytest.mark.parametrize("where", ["with-block", "forward"])
def test_no_hook_remains_after_an_exception(where):
    model = make_model()
    src, tgt = batch()
    too_long = torch.ones(B, 40, dtype=torch.long)  # longer than max_len: the forward pass raises

    def body():
        if where == "with-block":
            run(model, src, tgt)
            raise RuntimeError("boom")
        run(model, src, too_long)

    with pytest.raises((RuntimeError, ValueError)):
        with capture(model):
            body()
    with pytest.raises((RuntimeError, ValueError)):
        with ablate(model, {("decoder.layers.0.self_attn", 0)}):
            body()
    with pytest.raises((RuntimeError, ValueError)):
        with capture(model), ablate(model, {("decoder.layers.1.self_attn", 2)}):
            body()
    assert hooked_modules(model) == []


@pytest.mark.parametrize("kind", ["encoder-decoder", "language-model"])
def test_ablating_a_head_changes_the_output_and_ablating_none_does_not(kind):
    model = make_model(kind)
    src, tgt = batch()
    with torch.no_grad():
        plain = run(model, src, tgt)
        with ablate(model, set()):
            unchanged = run(model, src, tgt)
        with ablate(model, {("decoder.layers.0.self_attn", 1)}):
            ablated = run(model, src, tgt)
    torch.testing.assert_close(unchanged, plain, atol=0, rtol=0)
    assert (ablated - plain).abs().max() > 1e-3


def zero_out_proj_input(attention, heads):
    """Reference ablation that bypasses hook_z: zero each head's d_head slice of out_proj's input."""
    d_head = attention.d_head

    def pre_hook(module, inputs):
        (x,) = inputs  # (B, Tq, D)
        x = x.clone()
        for h in heads:
            x[..., h * d_head:(h + 1) * d_head] = 0.0
        return (x,)

    return attention.out_proj.register_forward_pre_hook(pre_hook)


@pytest.mark.parametrize("heads", [
    {("encoder.layers.0.self_attn", 2)},
    {("decoder.layers.1.cross_attn", 0), ("decoder.layers.1.cross_attn", 3)},
    {("decoder.layers.0.self_attn", 1), ("encoder.layers.1.self_attn", 3)},
])
def test_ablation_equals_zeroing_the_heads_slice_of_out_proj_input(heads):
    model = make_model()
    src, tgt = batch()
    modules = dict(model.named_modules())
    by_module = {}
    for name, head in heads:
        by_module.setdefault(name, []).append(head)
    handles = [zero_out_proj_input(modules[name], hs) for name, hs in by_module.items()]
    try:
        with torch.no_grad():
            expected = run(model, src, tgt)
    finally:
        for handle in handles:
            handle.remove()
    with torch.no_grad(), ablate(model, heads):
        ablated = run(model, src, tgt)
    torch.testing.assert_close(ablated, expected, atol=1e-6, rtol=0)


@pytest.mark.parametrize("kind", ["encoder-decoder", "language-model"])
def test_capture_in_decode_step_gives_the_rows_of_the_full_pattern(kind):
    model = make_model(kind)
    src, tgt = batch()
    with torch.no_grad():
        with capture(model) as full:
            run(model, src, tgt)
        state = model.encode(src) if model.has_encoder else model.encode(tgt[:, :0])
        for t in range(T):
            with capture(model) as step:
                _, state = model.decode_step(state, tgt[:, t])
            assert set(step) == {name for name in full if name.startswith("decoder.")}
            for name, pattern in step.items():
                Tk = full[name].shape[-1] if "cross_attn" in name else t + 1
                assert pattern.shape == (B, 4, 1, Tk), name
                torch.testing.assert_close(pattern[:, :, 0], full[name][:, :, t, :Tk], atol=1e-6, rtol=0)


def test_capture_hook_z_by_name():
    model = make_model()
    src, tgt = batch()
    name = "decoder.layers.0.cross_attn.hook_z"
    with capture(model, names=[name]) as cache:
        run(model, src, tgt)
    assert list(cache) == [name]
    assert cache[name].shape == (B, T, 4, 4)  # (B, Tq, H, d_head)
    assert not cache[name].requires_grad


def test_unknown_names_raise_key_error():
    model = make_model()
    with pytest.raises(KeyError, match="decoder.layers.9"):
        with capture(model, names=["decoder.layers.9.self_attn.hook_pattern"]):
            pass
    with pytest.raises(KeyError, match="decoder.layers.9"):
        with ablate(model, {("decoder.layers.9.self_attn", 0)}):
            pass
    with pytest.raises(KeyError):
        with ablate(model, {("decoder.layers.0.ff", 0)}):  # exists, but is not attention
            pass
    assert hooked_modules(model) == []


def test_a_head_that_does_not_exist_is_refused_at_the_call():
    model = make_model()
    for head in (4, -1):
        with pytest.raises(IndexError, match="4 heads"):
            with ablate(model, {("decoder.layers.0.self_attn", head)}):
                pass  # no forward pass: the error comes from ablate itself
    assert hooked_modules(model) == []


def test_threads_sharing_a_model_capture_and_ablate_only_their_own_forward_passes():
    """Four threads on one model at once, 1000 rounds each: each thread's inputs have their own lengths and its
    own ablated heads (thread 0 neither captures nor ablates); every round must equal that thread's solo run."""
    model = make_model(d_model=8, d_ff=8)
    g = torch.Generator().manual_seed(2)
    jobs = [(torch.randint(1, V, (1, 3 + t), generator=g), torch.randint(1, V, (1, 2 + t), generator=g),
             [set(), {("decoder.layers.0.self_attn", 1)}, {("encoder.layers.1.self_attn", 0)},
              {("decoder.layers.1.cross_attn", 3), ("decoder.layers.0.self_attn", 2)}][t]) for t in range(4)]

    def one_round(t):
        src, tgt, heads = jobs[t]
        if t == 0:
            with torch.no_grad():
                return run(model, src, tgt), {}
        with torch.no_grad(), capture(model) as cache, ablate(model, heads):
            return run(model, src, tgt), cache

    solo = [one_round(t) for t in range(4)]
    start, failures = threading.Barrier(4), []

    def worker(t):
        start.wait(timeout=30)
        want_out, want_cache = solo[t]
        for i in range(1000):
            out, cache = one_round(t)
            if not torch.allclose(out, want_out, atol=1e-6) or set(cache) != set(want_cache) or any(
                    cache[n].shape != want_cache[n].shape or not torch.allclose(cache[n], want_cache[n], atol=1e-6)
                    for n in want_cache):
                failures.append((t, i))
                return

    threads = [threading.Thread(target=worker, args=(t,)) for t in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)
    assert not any(thread.is_alive() for thread in threads)
    assert failures == []
    assert hooked_modules(model) == []


def test_a_capture_in_one_thread_leaves_another_thread_on_the_fused_path(monkeypatch):
    model = make_model()
    src, tgt = batch()
    fused_by = []
    fused = attention_module.F.scaled_dot_product_attention

    def spy(*args, **kwargs):
        fused_by.append(threading.get_ident())
        return fused(*args, **kwargs)

    monkeypatch.setattr(attention_module.F, "scaled_dot_product_attention", spy)
    opened, done = threading.Event(), threading.Event()

    def capturing():
        with capture(model) as cache:
            opened.set()
            done.wait(timeout=30)
            run(model, src, tgt)
        assert len(cache) == len(pattern_names(model))

    other = threading.Thread(target=capturing)
    other.start()
    assert opened.wait(timeout=30)
    try:
        points = hook_points(model)
        assert not any(point.active for point in points.values())  # the other thread's capture is not ours
        with torch.no_grad():
            run(model, src, tgt)
    finally:
        done.set()
        other.join(timeout=30)
    assert not other.is_alive()
    ours = threading.get_ident()
    assert fused_by.count(ours) == len(pattern_names(model))  # every attention module of ours took the fused path


def test_forward_hooks_act_only_in_the_context_that_registered_them():
    model = make_model()
    src, tgt = batch()
    seen = []
    opened, done = threading.Event(), threading.Event()

    def hooking():
        with forward_hooks([(model.decoder.layers[0], lambda module, args, output: seen.append("hooked"))]):
            opened.set()
            done.wait(timeout=30)

    other = threading.Thread(target=hooking)
    other.start()
    assert opened.wait(timeout=30)
    try:
        with torch.no_grad():
            run(model, src, tgt)
    finally:
        done.set()
        other.join(timeout=30)
    assert seen == []
    with forward_hooks([(model.decoder.layers[0], lambda module, args, output: seen.append("hooked"))]):
        run(model, src, tgt)
    assert seen == ["hooked"]
