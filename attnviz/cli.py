"""The commands `train`, `eval`, `decode` and `list` of `python -m attnviz`.

    python -m attnviz train --preset reverse-transformer --out checkpoints/reverse
    python -m attnviz train --task dates --arch lstm+bahdanau --size hidden_size=96 --time-budget 60
    python -m attnviz train --preset reverse-transformer --on-ray          # a Ray actor on $ATTNVIZ_RAY_ADDRESS
    torchrun --nproc_per_node=2 -m attnviz train --preset reverse-transformer   # one model, DDP on 2 processes
    python -m attnviz eval reverse
    python -m attnviz decode reverse "attention"
    python -m attnviz list

A checkpoint argument is a name (looked up in the user folder, then the shipped one) or a folder path.
Mistakes a user can fix (an unknown name, an input the model cannot read, a bad file) print one line
starting with "error:" and exit with code 2, as argparse does for bad options.
"""
import argparse
import functools
import json
import os
import sys
import time
from pathlib import Path

EXIT_BAD_INPUT = 2


def user_errors(command):
    """Turn a ValueError (the library's way to reject input) into a one-line message and exit code 2."""
    @functools.wraps(command)
    def run(args):
        try:
            return command(args) or 0
        except ValueError as error:
            print(f"error: {error}", file=sys.stderr)
            return EXIT_BAD_INPUT
    return run


def key_value(text):
    """'d_model=64' -> ('d_model', 64): values are read as JSON (numbers, true/false), else kept as text."""
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"{text!r} is not KEY=VALUE (e.g. d_model=64)")
    try:
        return key, json.loads(value)
    except ValueError:
        return key, value


# ---------------------------------------------------------------------------------------------- train

def read_user_file(path):
    """The bytes of a user's file, reading at most one byte more than the tasks accept (they say if too big)."""
    from attnviz.data.corpora import MAX_USER_BYTES
    try:
        with open(path, "rb") as f:
            return f.read(MAX_USER_BYTES + 1)
    except OSError as error:
        raise ValueError(f"cannot read {path}: {error.strerror}") from None


def training_plan(args):
    """(task, model, train config, output path, extra meta) from the options, a preset filling what is unsaid."""
    from attnviz.data.tasks import make_task
    from attnviz.training.checkpoint_folder import SHIPPED_DIR, USER_DIR
    from attnviz.training.checkpoint_names import validate_name
    from attnviz.training.presets import PRESETS, build

    preset = PRESETS[args.preset] if args.preset else None
    task_name = args.task or (preset and preset.task) or ("text" if args.text_file else "pairs" if args.tsv_file else None)
    if not task_name:
        raise ValueError("say what to train: --preset NAME or --task NAME (see python -m attnviz train --help)")
    same_task = preset is not None and preset.task == task_name
    task_params = {**(preset.task_params if same_task else {}), **dict(args.task_param or [])}
    if args.text_file:
        task_params["text"] = read_user_file(args.text_file)
    if args.tsv_file:
        task_params["tsv"] = read_user_file(args.tsv_file)
    task = make_task(task_name, seed=args.seed, **task_params)

    arch = args.arch or (preset.architecture if same_task else "lm" if task.kind == "lm" else "transformer")
    sizes = {**(preset.sizes if same_task and preset.architecture == arch else {}), **dict(args.size or [])}
    options = {"steps": args.steps, "time_budget": args.time_budget, "batch_size": args.batch_size,
               "lr": args.lr, "device": args.device}
    train = {**(preset.train if preset else {}), **{k: v for k, v in options.items() if v is not None},
             "seed": args.seed}
    name = validate_name(args.name) if args.name else (args.preset or f"{task_name}-{arch}").replace("+", "-")
    out = Path(args.out) if args.out else USER_DIR / name  # a --name is a name; a path is given with --out
    validate_name(out.name)  # before training, not after
    model, config = build(task, arch, sizes, train)
    if not args.name and not args.out and (SHIPPED_DIR / name).is_dir():  # it would hide the shipped model
        raise ValueError(f"{name!r} is the name of a shipped model: give yours its own, e.g. --name my-{name} "
                         "(or --out PATH)")
    return task, model, config, out, {"preset": args.preset, "arch": arch}


def show_progress(bar, snapshot):
    bar.n = snapshot.step
    postfix = {}
    if snapshot.history["loss"]:
        postfix["loss"] = f"{snapshot.history['loss'][-1]:.3f}"
    for metric, label in (("token_accuracy", "val_acc"), ("exact_match", "val_exact")):
        if metric in snapshot.metrics:
            postfix[label] = f"{snapshot.metrics[metric]:.3f}"
    bar.set_postfix(postfix, refresh=False)
    bar.refresh()


def format_metrics(metrics):
    return ", ".join(f"{name} {value:.4g}" for name, value in metrics.items())


@user_errors
def train_command(args):
    from attnviz.training import distributed

    if distributed.launched():  # one rank of `torchrun -m attnviz train ...`
        if args.on_ray:
            raise ValueError("--on-ray trains one run as one Ray actor: start it with python, not torchrun")
        with distributed.joined_ranks(args.device or "auto") as ranks:
            return train_here(args, ranks)
    return train_here(args)


def train_here(args, ranks=None):
    """Train in this process (one rank of a DDP run if `ranks`) or as a Ray actor (--on-ray). Rank 0 holds the
    name from before training until saved: a page run or another command cannot take it meanwhile."""
    from attnviz.training.checkpoint_names import claim_name
    from attnviz.training.device import set_threads_once
    from attnviz.training.loop import ONE_PROCESS

    ranks = ranks or ONE_PROCESS
    set_threads_once()  # cores - 1: one thread beats two for models this small, and leaves a core free
    task, model, config, out, extra = training_plan(args)
    if not ranks.is_main:
        return train_and_save(args, ranks, task, model, config, out, extra, claim=None)
    with claim_name(out) as claim:
        return train_and_save(args, ranks, task, model, config, out, extra, claim)


def train_and_save(args, ranks, task, model, config, out, extra, claim):
    """Train with a progress bar (Ctrl-C stops and saves), then save under `claim`: rank 0 alone speaks and saves."""
    from tqdm import tqdm

    from attnviz.training.checkpoint import save_checkpoint
    from attnviz.training.executor import RAY_ADDRESS_VARIABLE, ThreadExecutor
    from attnviz.training.loop import ONE_PROCESS
    from attnviz.training.runs import RunRegistry, TrainingRun, run_meta

    n_parameters = sum(p.numel() for p in model.parameters())
    if ranks.is_main:
        print(f"training {extra['arch']} ({n_parameters:,} parameters) on {task.name} for up to {config.steps} steps"
              + (f" or {config.time_budget:g} s" if config.time_budget else "")
              + (f" on {ranks.world} processes" if ranks is not ONE_PROCESS else "") + "; Ctrl-C stops and saves")
    # In this process, in a thread: the CLI does nothing else while it trains (no GIL to share with pages), and a
    # worker would only add its start-up (spawn and import torch, about 2 s). --on-ray: on the cluster's node.
    if args.on_ray:
        from attnviz.training.ray_executor import ray_executor
        executor = ray_executor(os.environ.get(RAY_ADDRESS_VARIABLE, "").strip() or "auto")
    else:
        executor = ThreadExecutor(ranks)
    run = TrainingRun(model, task, config, name=out.name, registry=RunRegistry(max_concurrent=1),
                      executor=executor).start()
    with tqdm(total=config.steps, unit="step", dynamic_ncols=True, disable=not ranks.is_main) as bar:
        try:
            while not run.done:
                show_progress(bar, run.snapshot())
                time.sleep(0.25)
        except KeyboardInterrupt:
            bar.write("stopping: the model is saved as it is")
            run.stop(timeout=None)
        show_progress(bar, run.snapshot())
    if run.snapshot().node:
        print(f"trained on the cluster node {run.snapshot().node}")
    result = run.result
    if result.status == "failed":
        print(f"training failed: {result.error}", file=sys.stderr)
        return 1
    if not ranks.is_main:
        return 0
    if result.error:
        print(f"warning: {result.error}", file=sys.stderr)
    meta = run_meta(model, task, config, result, extra, run.test_metrics)
    path = save_checkpoint(out, model, task.tokenizer, meta, claim=claim)
    print(f"saved {path} after {result.step} steps ({result.elapsed:.1f} s of training)")
    print(f"test: {format_metrics(meta['metrics'])}")


# ---------------------------------------------------------------------------------------------- eval, decode, list

def task_of(checkpoint):
    task = checkpoint.task()
    if task is None:
        raise ValueError(f"the checkpoint {checkpoint.name} records no task, so it has no test split or input format")
    return task


@user_errors
def eval_command(args):
    from attnviz.training.checkpoint import load_checkpoint
    from attnviz.training.device import pick_device, set_threads_once
    from attnviz.training.evaluation import evaluate_split

    set_threads_once()
    checkpoint = load_checkpoint(args.checkpoint)
    model = checkpoint.model.to(pick_device(args.device))
    metrics = evaluate_split(model, task_of(checkpoint), args.split)
    recorded = (checkpoint.meta.get("metrics") or {}) if args.split == "test" else {}
    if args.json:
        print(json.dumps({"checkpoint": str(checkpoint.path), "split": args.split, "metrics": metrics,
                          "recorded": recorded}))
        return
    print(f"{checkpoint.name} on the {args.split} split ({checkpoint.path})")
    for name, value in metrics.items():
        before = f"   (recorded {recorded[name]:.4g})" if isinstance(recorded.get(name), (int, float)) else ""
        print(f"  {name:15} {value:.4g}{before}")


def decode(checkpoint, text, max_new_tokens=None):
    """Greedy decoding of a user's text: the output (seq2seq) or the prompt with its continuation (LM).

    Input the model cannot take (empty, too long, no task recorded) raises ValueError with the reason.
    """
    from attnviz.decoding import greedy

    model, tokenizer = checkpoint.model, checkpoint.tokenizer
    src = task_of(checkpoint).encode_source(text, max_len=model.config.max_len)  # (1, S)
    max_new_tokens = model.config.max_len if max_new_tokens is None else max_new_tokens
    decoded = greedy(model, tokenizer, src, max_new_tokens, trace=False)
    return tokenizer.decode(decoded.ids() if model.has_encoder else decoded.sequence())


@user_errors
def decode_command(args):
    from attnviz.training.checkpoint import load_checkpoint

    checkpoint = load_checkpoint(args.checkpoint)
    unknown = task_of(checkpoint).unknown_characters(args.text)
    if unknown:
        print(f"note: the model does not know the characters {ascii(''.join(unknown))}; they are read as <unk>",
              file=sys.stderr)
    print(decode(checkpoint, args.text, args.max_new_tokens))


@user_errors
def list_command(args):
    from attnviz.training.checkpoint_list import list_checkpoints

    found = list_checkpoints()
    rows = [("name", "where", "architecture", "task", "test metric", "path")]
    for info in found:
        metrics, task = info.meta.get("metrics") or {}, info.meta.get("task") or {}
        metric = next((f"{k} {metrics[k]:.3g}" for k in ("exact_match", "perplexity", "token_accuracy")
                       if isinstance(metrics.get(k), (int, float))), "-")
        rows.append((info.name, "shipped" if info.shipped else "user", info.meta.get("arch") or info.meta["architecture"],
                     task.get("name", "-"), metric, str(info.path)))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip())
    if not found:
        print("(no checkpoints yet: python -m attnviz train --preset reverse-transformer)")
    for path, problem in found.problems:
        print(f"warning: skipped {path}: {problem}", file=sys.stderr)


# ---------------------------------------------------------------------------------------------- parsers

def add_parser(subparsers):
    from attnviz.data.tasks import TASKS
    from attnviz.models.architectures import ARCHITECTURES
    from attnviz.training.presets import PRESETS

    def command(name, help, description, run):
        parser = subparsers.add_parser(name, help=help, description=description,
                                       formatter_class=argparse.RawDescriptionHelpFormatter)
        parser.set_defaults(run=run)
        return parser

    train = command("train", "train a model and save it as a checkpoint", (
        "Train a model on a task and save it as a checkpoint (in the user folder, or --out).\n"
        "A --preset sets task, architecture, sizes and training settings; other options override it.\n\n"
        "presets:\n" + "".join(f"  {name:24} {p.description}\n" for name, p in PRESETS.items())
        + "\ntasks:\n" + "".join(f"  {name:24} {text}\n" for name, text in TASKS.items())
        + "\narchitectures:\n" + "".join(f"  {name:24} {text}\n" for name, text in ARCHITECTURES.items())
        + "\nexamples:\n  python -m attnviz train --preset reverse-transformer --out checkpoints/reverse\n"
        "  python -m attnviz train --task reverse --arch lstm+bahdanau --steps 800 --name rev-lstm\n"
        "  python -m attnviz train --task text --text-file notes.txt --size d_model=64 --time-budget 120"),
        train_command)
    train.add_argument("--preset", choices=PRESETS, metavar="PRESET", help="a tested recipe (listed above)")
    train.add_argument("--task", choices=TASKS, metavar="TASK", help="the task to learn (listed above)")
    train.add_argument("--arch", choices=ARCHITECTURES, metavar="ARCH", help="model architecture (listed above)")
    train.add_argument("--size", type=key_value, action="append", metavar="KEY=VALUE",
                       help="a model size, repeatable: d_model, n_heads, n_encoder_layers, n_decoder_layers, d_ff, "
                            "max_len (Transformer); embed_dim, hidden_size, n_layers, bidirectional (RNN), "
                            "input_feeding (Luong attention)")
    train.add_argument("--task-param", type=key_value, action="append", metavar="KEY=VALUE",
                       help="a task parameter, repeatable, e.g. min_len=4 max_len=8 n_train=2000")
    train.add_argument("--text-file", metavar="PATH", help="UTF-8 text for the 'text' task (language model; implies it)")
    train.add_argument("--tsv-file", metavar="PATH", help="source<TAB>target lines for the 'pairs' task (implies it)")
    train.add_argument("--steps", type=int, help="training steps (upper bound with --time-budget)")
    train.add_argument("--time-budget", type=float, metavar="SECONDS", help="stop after this much training time")
    train.add_argument("--batch-size", type=int)
    train.add_argument("--lr", type=float, help="peak learning rate (AdamW, warm-up then cosine decay)")
    train.add_argument("--seed", type=int, default=0, help="seeds the task's data, the weights and the batches")
    train.add_argument("--device", choices=("auto", "cpu", "cuda", "mps"), help="default: auto (CUDA, MPS, CPU)")
    where = train.add_mutually_exclusive_group()
    where.add_argument("--name", help="checkpoint name in the user folder (default: the preset or TASK-ARCH)")
    where.add_argument("--out", metavar="PATH", help="checkpoint folder to write instead")
    train.add_argument("--on-ray", action="store_true",
                       help="train as a Ray actor on the cluster at $ATTNVIZ_RAY_ADDRESS (default: auto, the local "
                            "node's cluster); the weights come back and are saved here")

    evaluate = command("eval", "re-evaluate a checkpoint on its task's test split", (
        "Rebuild the checkpoint's task from its seed and evaluate the model on a split: loss, token accuracy,\n"
        "and exact match (seq2seq) or perplexity (language model), next to the metrics recorded at training."),
        eval_command)
    evaluate.add_argument("checkpoint", help="checkpoint name or folder")
    evaluate.add_argument("--split", choices=("test", "val", "train"), default="test")
    evaluate.add_argument("--device", choices=("auto", "cpu", "cuda", "mps"), default="cpu")
    evaluate.add_argument("--json", action="store_true", help="print the metrics as JSON")

    decode_parser = command("decode", "greedy-decode a text with a checkpoint", (
        "Feed TEXT to the model and print its greedy output: the target for a sequence-to-sequence model,\n"
        "the prompt and its continuation for a language model.\n\n"
        "example:\n  python -m attnviz decode reverse \"attention\""), decode_command)
    decode_parser.add_argument("checkpoint", help="checkpoint name or folder")
    decode_parser.add_argument("text", help="the input (quote it)")
    decode_parser.add_argument("--max-new-tokens", type=int, metavar="N",
                               help="most tokens to generate (default: the model's max_len)")

    command("list", "list shipped and user checkpoints", (
        "List the checkpoints in the shipped folder and the user folder (ATTNVIZ_USER_DIR) with their\n"
        "architecture, task and recorded test metric. Folders that cannot be read are reported, not fatal."),
        list_command)
