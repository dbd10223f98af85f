"""AppTest set-up shared by the page tests."""
import pytest


@pytest.fixture(scope="session")
def page_models():
    """Small checkpoints in the test user folder for the attention pages, by name: "test-reverse", a 2+1-layer
    Transformer trained briefly on reverse (so its heads show real patterns), and untrained "test-lm"
    (decoder-only), "test-rnn" (LSTM with attention) and "test-lstm" (no attention)."""
    import torch

    from attnviz import build_model
    from attnviz.data.tasks import make_task
    from attnviz.models.architectures import model_config
    from attnviz.training import checkpoint
    from attnviz.training.config import TrainConfig
    from attnviz.training.loop import train
    from attnviz.training.runs import run_meta

    torch.manual_seed(0)
    reverse = make_task("reverse", min_len=4, max_len=7, alphabet="abcdefgh", n_train=1000, n_val=20, n_test=60)
    names = {}

    def save(name, task, architecture, steps=0, **sizes):
        model = build_model(model_config(architecture, task.tokenizer, **sizes))
        config = TrainConfig(steps=max(steps, 1), batch_size=32, lr=1e-2, warmup=10, eval_every=1000, snapshot_every=0)
        result = train(model, task, config) if steps else None
        meta = run_meta(model.eval(), task, config, result) if steps else {"task": task.spec()}
        names[name] = checkpoint.save_checkpoint(checkpoint.USER_DIR / name, model, task.tokenizer, meta)

    save("test-reverse", reverse, "transformer", steps=120, d_model=32, n_heads=2, n_encoder_layers=2, d_ff=64,
         max_len=40)
    save("test-lm", make_task("text", text="the cat sat on the mat. " * 40, block_size=16), "lm", d_model=16,
         n_heads=2, n_decoder_layers=2, d_ff=32, max_len=40)
    save("test-rnn", reverse, "lstm+bahdanau", embed_dim=8, hidden_size=16)
    save("test-lstm", reverse, "lstm", embed_dim=8, hidden_size=16)
    return names


@pytest.fixture
def chinese():
    """The test's own thread reads Chinese too, for the duration of a test: AppTest calls a widget's format_func
    (which translates its options) in the test's thread when it sets a value, where the page's session does so in
    its own."""
    from attnviz import i18n
    i18n.use_language("zh")
    yield
    i18n.use_language(i18n.SOURCE_LANGUAGE)
