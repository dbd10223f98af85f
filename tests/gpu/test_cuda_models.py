"""On a CUDA GPU, against the same references as the CPU suite: CPU logits, nn.MultiheadAttention, capture off,
the full forward, and a checkpoint's recorded metrics. Skipped, with that reason, without a GPU."""
import pytest
import torch
import torch.nn as nn

from attnviz import build_model, capture
from attnviz.data.tasks import make_task
from attnviz.models.architectures import ARCHITECTURES, kind_of, model_config
from attnviz.models.attention import MultiHeadAttention
from attnviz.training import checkpoint
from attnviz.training.config import TrainConfig
from attnviz.training.evaluation import evaluate_split
from attnviz.training.loop import train
from attnviz.training.runs import run_meta

pytestmark = pytest.mark.cuda
CUDA = torch.device("cuda")
SMALL = {"transformer": {"d_model": 32, "n_heads": 4, "d_ff": 64}, "lm": {"d_model": 32, "n_heads": 4, "d_ff": 64}}


@pytest.fixture(autouse=True)
def full_fp32():
    """No TF32 in matmuls or cuDNN: fp32 on the GPU means fp32, so CPU and CUDA agree to 1e-4."""
    saved = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    yield
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


@pytest.fixture(scope="module")
def tasks():
    return {"seq2seq": make_task("reverse", seed=0, min_len=3, max_len=6, alphabet="abcdef", n_train=2000, n_val=100,
                                 n_test=100),
            "lm": make_task("pydoc", seed=0, block_size=32)}


def built(architecture, tasks, seed=0):
    task = tasks[kind_of(architecture)]
    torch.manual_seed(seed)
    return task, build_model(model_config(architecture, task.tokenizer, **SMALL.get(architecture, {})))


@pytest.mark.parametrize("architecture", ARCHITECTURES)
def test_every_architecture_gives_the_cpu_logits_on_cuda(architecture, tasks):
    task, model = built(architecture, tasks)
    batch = next(task.batches("test", 16))
    with torch.no_grad():
        on_cpu = model.eval().logits(batch.src, batch.tgt_in)
        gpu = batch.to(CUDA)
        on_cuda = model.to(CUDA).logits(gpu.src, gpu.tgt_in)
    torch.testing.assert_close(on_cuda.cpu(), on_cpu, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("architecture", ARCHITECTURES)
def test_every_architecture_trains_50_steps_under_bf16_with_a_finite_falling_loss(architecture, tasks):
    task, model = built(architecture, tasks)
    result = train(model, task, TrainConfig(steps=50, batch_size=32, lr=3e-3, warmup=5, eval_every=50,
                                            snapshot_every=0, device="cuda"))
    losses = result.history["loss"]
    assert result.status == "done" and len(losses) == 50 and all(map(torch.isfinite, torch.tensor(losses)))
    assert sum(losses[-10:]) < sum(losses[:10])
    assert all(note.startswith("bf16 autocast off for this RNN on this GPU: ") for note in result.notes)


def test_minilm_gives_the_cpu_states_on_cuda():
    from attnviz.models.pretrained import load_minilm, minilm_available
    if not minilm_available():
        pytest.fail("the pretrained MiniLM package is not installed (requirements.txt has it)")
    minilm = load_minilm()
    batch = minilm.encode_batch(["Attention is all you need.", "A short one."])
    with torch.no_grad():
        on_cpu = minilm.model(batch.ids, padding_mask=batch.attention_mask == 0)
        model = minilm.model.to(CUDA)
        on_cuda = model(batch.ids.to(CUDA), padding_mask=(batch.attention_mask == 0).to(CUDA))
    real = batch.attention_mask.bool()
    torch.testing.assert_close(on_cuda.cpu()[real], on_cpu[real], atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("architecture", ["transformer", "lm", "lstm+bahdanau"])
def test_capture_changes_nothing_and_the_kv_cache_equals_the_full_forward_on_cuda(architecture, tasks):
    task, model = built(architecture, tasks)
    model = model.to(CUDA).eval()
    batch = next(task.batches("test", 8)).to(CUDA)
    with torch.no_grad():
        plain = model.logits(batch.src, batch.tgt_in)
        with capture(model) as cache:
            captured = model.logits(batch.src, batch.tgt_in)
        torch.testing.assert_close(captured, plain, atol=1e-5, rtol=1e-5)
        assert cache or architecture == "lstm"
        state = model.encode(batch.src) if model.has_encoder else model.encode(batch.tgt_in[:, :0])
        steps = []
        for t in range(batch.tgt_in.shape[1]):
            logits, state = model.decode_step(state, batch.tgt_in[:, t])  # (B, V)
            steps.append(logits)
    torch.testing.assert_close(torch.stack(steps, 1), plain, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("with_padding", [False, True])
def test_both_attention_paths_equal_torch_multihead_attention_on_cuda(with_padding):
    torch.manual_seed(0)
    ours = MultiHeadAttention(32, 4).to(CUDA).eval()
    theirs = nn.MultiheadAttention(32, 4, batch_first=True).to(CUDA).eval()
    with torch.no_grad():
        theirs.in_proj_weight.copy_(torch.cat([ours.q_proj.weight, ours.k_proj.weight, ours.v_proj.weight]))
        theirs.in_proj_bias.copy_(torch.cat([ours.q_proj.bias, ours.k_proj.bias, ours.v_proj.bias]))
        theirs.out_proj.weight.copy_(ours.out_proj.weight)
        theirs.out_proj.bias.copy_(ours.out_proj.bias)
    x = torch.randn(3, 9, 32, device=CUDA)
    causal = torch.ones(9, 9, dtype=torch.bool, device=CUDA).triu(1)
    padding = None
    if with_padding:
        padding = torch.zeros(3, 9, dtype=torch.bool, device=CUDA)
        padding[1, 5:] = True
    expected, _ = theirs(x, x, x, attn_mask=causal, key_padding_mask=padding)
    with torch.no_grad():
        fused = ours(x, x, x, attn_mask=causal, key_padding_mask=padding, is_causal=True)
        with capture(ours):
            explicit = ours(x, x, x, attn_mask=causal, key_padding_mask=padding, is_causal=True)
    torch.testing.assert_close(fused, expected, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(explicit, expected, atol=1e-5, rtol=1e-4)


def test_a_query_that_sees_no_key_gets_zeros_on_cuda_on_both_paths():
    torch.manual_seed(0)
    ours = MultiHeadAttention(32, 4).to(CUDA).eval()
    x = torch.randn(2, 5, 32, device=CUDA, requires_grad=True)
    padding = torch.zeros(2, 5, dtype=torch.bool, device=CUDA)
    padding[1] = True
    fused = ours(x, x, x, key_padding_mask=padding)
    with capture(ours):
        explicit = ours(x, x, x, key_padding_mask=padding)
    bias = ours.out_proj.bias.detach().expand(5, 32)
    torch.testing.assert_close(fused[1].detach(), bias)
    torch.testing.assert_close(explicit.detach(), fused.detach(), atol=1e-5, rtol=1e-4)
    (fused.sum() + explicit.sum()).backward()
    assert torch.isfinite(x.grad).all()


def test_a_checkpoint_trained_on_cuda_loads_on_the_cpu_with_its_recorded_metrics(tasks, tmp_path):
    task, model = built("transformer", tasks)
    config = TrainConfig(steps=80, batch_size=32, lr=3e-3, warmup=5, eval_every=40, snapshot_every=40, device="cuda")
    result = train(model, task, config)
    assert next(model.parameters()).device.type == "cuda"
    meta = run_meta(model, task, config, result)
    path = checkpoint.save_checkpoint(tmp_path / "cuda-trained", model, task.tokenizer, meta)
    loaded = checkpoint.load_checkpoint(path)
    assert next(loaded.model.parameters()).device.type == "cpu"
    again = evaluate_split(loaded.model, loaded.task(), "test")
    for name, value in meta["metrics"].items():
        assert again[name] == pytest.approx(value, abs=1e-4), name
