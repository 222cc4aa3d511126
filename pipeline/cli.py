"""The command line: ``python -m pipeline <command> [options]``.

One function per command, each a thin layer that resolves the configuration
and calls a stage. Problems the user can fix (:class:`UserError`) print one
line and exit with status 2; nothing else is caught.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

from pipeline import __version__
from pipeline.config import (
    PRESETS,
    RESOLVED_NAME,
    Config,
    load_config,
    setting_changes,
    with_overrides,
    write_resolved,
)
from pipeline.errors import UserError

log = logging.getLogger("pipeline")
MODEL_NAMES = ("music_gesture", "sound_of_pixels", "audio_only")


def _quiet_arg(p: argparse.ArgumentParser) -> None:
    # Also accepted after the command (jobs/*.py put the command first); SUPPRESS keeps the
    # top-level -q from being reset by the sub-command's default.
    p.add_argument(
        "-q", "--quiet", action="store_true", default=argparse.SUPPRESS, help="no progress bars, warnings only"
    )


def _config_args(p: argparse.ArgumentParser, default_preset: str | None) -> None:
    _quiet_arg(p)
    p.add_argument(
        "--preset",
        choices=PRESETS,
        default=default_preset,
        help=f"size preset: tiny (tests, ~1 min), demo (the embedded demo), full (a cluster)"
        f" (default: {default_preset or 'demo values from default.yaml'})",
    )
    p.add_argument(
        "--config", action="append", default=[], metavar="FILE", help="YAML file overriding config keys (repeatable)"
    )
    p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="SECTION.KEY=VALUE",
        help="override one config key, e.g. --set synth.duets=10 (repeatable)",
    )


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every sub-command."""
    parser = argparse.ArgumentParser(
        prog="python -m pipeline",
        description="Music Gesture: visually guided music source separation on Ray.",
    )
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bars, warnings only")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser(
        "synth",
        help="generate the synthetic gesture→sound benchmark (URMP layout + OpenPose JSON)",
        description="Generate the synthetic benchmark: real scores and rendered instrument sound, "
        "players whose hands move with their own notes, written in the URMP layout with per-frame "
        "OpenPose JSON. Re-running into the same folder renders only what is missing.",
    )
    p.add_argument("--out", type=Path, required=True, metavar="DIR", help="output folder (created if missing)")
    p.add_argument("--seed", type=int, default=None, help="random seed (same seed, same bytes); sets synth.seed")
    _config_args(p, default_preset="demo")
    p.set_defaults(func=cmd_synth)

    p = sub.add_parser(
        "preprocess",
        help="videos → keypoints + spectrograms in Parquet shards (Ray Data)",
        description="Decode videos, estimate and track poses, cut 6-second clips with their mixture and "
        "stem spectrograms, and write Parquet shards. Incremental: unchanged videos are skipped, a changed "
        "config writes a new dataset version beside the old one. INPUT: a URMP-layout folder (real or "
        "generated), a MUSIC folder (JSON lists + downloaded videos), or any folder of videos; local path "
        "or s3:// / gs:// URI.",
    )
    p.add_argument("--input", required=True, metavar="SRC", help="input folder or URI")
    p.add_argument("--output", required=True, metavar="DST", help="shard folder or URI (versions go inside)")
    _config_args(p, default_preset=None)
    p.set_defaults(func=cmd_preprocess)

    p = sub.add_parser(
        "train",
        help="train Music Gesture or a baseline with DDP on Ray Train",
        description="Train a separator on preprocessed shards with Ray Train (DDP: gloo on CPU, NCCL and mixed "
        "precision on GPU). Checkpoints every epoch into OUTPUT/<model>/; re-running the same command resumes "
        "from the latest checkpoint; --resume starts a new run from a given checkpoint.",
    )
    p.add_argument(
        "--shards", required=True, metavar="DIR", help="preprocessed shards (a version folder or its parent)"
    )
    p.add_argument("--output", required=True, metavar="DIR", help="where runs, checkpoints and logs go")
    p.add_argument("--model", choices=MODEL_NAMES, help="sets train.model")
    p.add_argument("--workers", type=int, help="DDP workers; sets train.workers")
    p.add_argument(
        "--resume", metavar="CKPT", help="start a new run from this checkpoint (the file, its folder, or a run folder)"
    )
    _config_args(p, default_preset=None)
    p.set_defaults(func=cmd_train)

    p = sub.add_parser(
        "evaluate",
        help="score checkpoints on the test split with mir_eval (Ray Data, distributed)",
        description="Separate a fixed, seeded list of test mixtures (mix-and-separate: 2 and 3 sources, hetero "
        "and homo; and every real mixture with stems) with each checkpoint, and score them with mir_eval's "
        "bss_eval_sources in parallel. Writes scores.parquet (one row per mixture and system), summary.md / "
        "summary.json (with the mixture and ideal-binary-mask reference rows), plots/ and example wavs.",
    )
    p.add_argument(
        "--shards", required=True, metavar="DIR", help="preprocessed shards (a version folder or its parent)"
    )
    p.add_argument("--checkpoint", required=True, action="append", metavar="CKPT",
                   help="a trained checkpoint: the file, its folder, or a training run folder (its final/ checkpoint); "
                        "repeat to compare models side by side")  # fmt: skip
    p.add_argument("--output", required=True, metavar="DIR", help="where the report goes")
    p.add_argument("--workers", type=int, help="inference actors (0: serial, no Ray); sets evaluate.workers")
    _config_args(p, default_preset=None)
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser(
        "score",
        help="mir_eval SDR/SIR/SAR for folders of wavs from any system",
        description="Score estimated sources against references with mir_eval's bss_eval_sources. REFERENCE holds "
        "one subfolder per mixture (or the wavs of a single mixture); ESTIMATE mirrors it, with files of the same "
        "names. Estimates are resampled to the reference rate and cut or padded to its length. Silent references "
        "are not scored and are listed.",
    )
    p.add_argument("--reference", required=True, type=Path, metavar="DIR", help="reference wavs")
    p.add_argument("--estimate", required=True, type=Path, metavar="DIR", help="estimated wavs, same names")
    p.add_argument("--output", type=Path, metavar="FILE", help="write the scores as JSON here too")
    p.add_argument("--permutation", action="store_true",
                   help="match estimates to references by the best permutation (mir_eval's default) instead of "
                   "by file name")  # fmt: skip
    p.add_argument("--silence-db", type=float, default=-50.0, help="references below this RMS level are skipped")
    _quiet_arg(p)
    p.set_defaults(func=cmd_score)

    p = sub.add_parser(
        "separate",
        help="separate each musician of your own video (one wav per person + a labelled preview)",
        description="Find and track the musicians in a video, separate each one's sound with a trained visual "
        "model, and write person<k>.wav per musician (numbered left to right; the tracks add up to the "
        "mixture), mixture.wav and preview.mp4 with each musician's box labelled by the name of their wav. "
        "Poses come from --keypoints (a folder of OpenPose JSON) or from preprocess.pose_backend run on the "
        "frames (mediapipe by default on a CPU).",
    )
    p.add_argument("--video", required=True, type=Path, metavar="FILE", help="a video with sound")
    p.add_argument(
        "--checkpoint",
        required=True,
        metavar="CKPT",
        help="a music_gesture or sound_of_pixels checkpoint (file, its folder, or a training run folder)",
    )
    p.add_argument("--output", required=True, type=Path, metavar="DIR", help="where the wavs and the preview go")
    p.add_argument("--keypoints", type=Path, metavar="DIR", help="OpenPose JSON for the video (skips pose estimation)")
    _config_args(p, default_preset=None)
    p.set_defaults(func=cmd_separate)

    p = sub.add_parser(
        "run",
        help="the main job, end to end on the embedded default (local Ray)",
        description="Run the whole pipeline on the embedded default (a local Ray): generate the benchmark "
        "into OUT/benchmark, preprocess it into OUT/shards, train Music Gesture and the baselines into OUT/train, "
        "and evaluate them side by side into OUT/evaluation (the summary table is printed at the end). "
        "Re-running resumes where it stopped.",
    )
    p.add_argument("--models", default=",".join(MODEL_NAMES),
                   help=f"comma-separated models to train and compare (default: {','.join(MODEL_NAMES)})")  # fmt: skip
    p.add_argument("--out", type=Path, default=Path("runs/demo"), metavar="DIR", help="run folder (default: runs/demo)")
    _config_args(p, default_preset="demo")
    p.set_defaults(func=cmd_run)

    p = sub.add_parser(
        "bench",
        help="each stage against its floor (preprocess, layout, pose, loader, DDP, evaluation, memory)",
        description="Measure every stage next to its floor in one run on the same generated inputs: "
        "preprocessing vs decoding, vs Sound of Pixels' JPEG+wav layout (time and bytes), pose throughput per "
        "backend and batch size, the Ray Data loader vs memory, Ray Train DDP vs plain torch DDP, evaluation on "
        "1 vs 2 CPUs, peak memory on a 10 s vs 60 s video; plus the quality table. Prints one table (min / "
        "median / max over repeats, targets met or not), writes OUT/bench.json and the bench section of "
        "BENCHMARKS.md. --quick: small inputs, a few minutes (checks the command, not the targets).",
    )
    p.add_argument("--quick", action="store_true", help="small inputs, one repeat (a few minutes)")
    p.add_argument("--out", type=Path, default=Path("runs/bench"), metavar="DIR",
                   help="inputs and bench.json (default: runs/bench; generated videos are reused)")  # fmt: skip
    p.add_argument("--repeats", type=int, help="repeats per figure (default: 3, --quick 1)")
    p.add_argument("--videos", type=Path, metavar="DIR",
                   help="read this generated benchmark (`synth`) instead of generating one into "
                   "OUT/videos")  # fmt: skip
    p.add_argument("--benchmarks-md", type=Path, metavar="FILE",
                   help="the Markdown file whose bench section is rewritten (default: BENCHMARKS.md; "
                   "--quick writes it only when given)")  # fmt: skip
    p.add_argument("--only", nargs="+", metavar="SECTION", help="run only these sections (of: %(default)s)",
                   default=None)  # fmt: skip
    p.set_defaults(func=cmd_bench)
    return parser


def cmd_bench(args: argparse.Namespace) -> int:
    """``bench``: one table of every stage against its floor."""
    from pipeline.bench import SECTIONS, run_bench, table

    if args.only and set(args.only) - set(SECTIONS):
        raise UserError(f"--only: unknown section(s) {sorted(set(args.only) - set(SECTIONS))}; "
                        f"choose from {', '.join(SECTIONS)}")  # fmt: skip
    command = "python -m pipeline bench " + " ".join(sys.argv[2:]) if sys.argv[1:2] == ["bench"] else ""
    result = run_bench(args.out, quick=args.quick, repeats=args.repeats, benchmarks_md=args.benchmarks_md,
                       only=args.only, command=command.strip(), videos=args.videos)  # fmt: skip
    print(table(result.rows))
    print(f"\nbench done in {result.seconds:.0f} s: {args.out / 'bench.json'}")
    return 0


def cmd_synth(args: argparse.Namespace) -> int:
    """``synth``: generate the benchmark and print its summary."""
    from pipeline.synth.generate import generate_benchmark

    overrides = list(args.overrides) + ([f"synth.seed={args.seed}"] if args.seed is not None else [])
    config = load_config(args.preset, args.config, overrides)
    start = time.perf_counter()
    summary = generate_benchmark(config, args.out, progress=not args.quiet)
    print(f"benchmark written to {args.out} in {time.perf_counter() - start:.0f} s")
    print(summary.table())
    return 0


def cmd_preprocess(args: argparse.Namespace) -> int:
    """``preprocess``: shards from videos; exit 1 only when nothing at all could be processed."""
    from pipeline.preprocess import run_preprocess

    config = load_config(args.preset, args.config, args.overrides)
    summary = run_preprocess(config, args.input, args.output, progress=not args.quiet)
    print(f"preprocessing done: {summary.version_dir}")
    print(summary.table())
    return 1 if summary.videos > 0 and summary.clips == 0 else 0


def cmd_train(args: argparse.Namespace) -> int:
    """``train``: DDP training on Ray Train."""
    from pipeline.train import run_train

    extra = [f"train.model={args.model}"] if args.model else []
    extra += [f"train.workers={args.workers}"] if args.workers else []
    config = load_config(args.preset, args.config, [*args.overrides, *extra])
    summary = run_train(config, args.shards, args.output, resume=args.resume, progress=not args.quiet)
    print(f"training done: {summary.checkpoint}")
    print(summary.table())
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    """``evaluate``: distributed separation + mir_eval scoring of checkpoints on the test split."""
    from pipeline.evaluate import run_evaluate

    extra = [f"evaluate.workers={args.workers}"] if args.workers is not None else []
    config = load_config(args.preset, args.config, [*args.overrides, *extra])
    summary = run_evaluate(config, args.shards, args.checkpoint, args.output, progress=not args.quiet)
    print(f"evaluation done in {summary.seconds:.0f} s")
    print(summary.table())
    return 0


def cmd_score(args: argparse.Namespace) -> int:
    """``score``: mir_eval metrics for folders of wav files."""
    from pipeline.scoring import score_folders, write_json

    scores = score_folders(args.reference, args.estimate, search=args.permutation, silence_db=args.silence_db)
    print(scores.table())
    if args.output:
        write_json(scores, args.output)
        print(f"scores written to {args.output}")
    return 0 if scores.mixtures else 1


def cmd_separate(args: argparse.Namespace) -> int:
    """``separate``: one wav per musician of a user's video."""
    from pipeline.separation import run_separate

    config = load_config(args.preset, args.config, args.overrides)
    summary = run_separate(config, args.video, args.checkpoint, args.output, keypoints=args.keypoints)
    print(f"separated into {summary.output}")
    print(summary.table())
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    """``run``: the main job: benchmark → shards → train Music Gesture and the baselines → evaluate."""
    from pipeline.evaluate import run_evaluate
    from pipeline.preprocess import run_preprocess
    from pipeline.synth.generate import generate_benchmark
    from pipeline.train import run_train

    config = load_config(args.preset, args.config, args.overrides)
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    unknown = [m for m in models if m not in MODEL_NAMES]
    if unknown or not models:
        raise UserError(f"--models: unknown model(s) {', '.join(unknown)}; choose from {', '.join(MODEL_NAMES)}")
    start = time.perf_counter()
    _claim_run_folder(args.out, config)
    bench = args.out / "benchmark"
    print(f"[1/4] generating the {args.preset or 'demo'} benchmark into {bench}")
    summary = generate_benchmark(config, bench, progress=not args.quiet)
    print(summary.table())
    shards_dir = args.out / "shards"
    print(f"[2/4] preprocessing it into Parquet shards in {shards_dir}")
    prep = run_preprocess(config, str(bench), str(shards_dir), progress=not args.quiet)
    print(prep.table())
    if prep.errors:
        return 1
    train_dir, checkpoints = args.out / "train", []
    for i, model in enumerate(models, 1):
        print(f"[3/4] training {model} ({i} of {len(models)}) with {config.train.workers} DDP workers into {train_dir}")
        trained = run_train(with_overrides(config, [f"train.model={model}"]), str(shards_dir), str(train_dir),
                            progress=not args.quiet)  # fmt: skip
        print(trained.table())
        checkpoints.append(trained.checkpoint)
    eval_dir = args.out / "evaluation"
    print(f"[4/4] evaluating {', '.join(models)} on the test split into {eval_dir}")
    evaluated = run_evaluate(config, str(shards_dir), checkpoints, str(eval_dir), progress=not args.quiet)
    print(evaluated.table())
    print(f"done in {time.perf_counter() - start:.0f} s")
    return 0


def _claim_run_folder(out: Path, config: Config) -> None:
    """Use ``out`` for this run: new, or made by an earlier run with the same settings.

    The resolved config is written first, so an interrupted run can be resumed.
    """
    if out.exists() and not out.is_dir():
        raise UserError(f"run folder {out} exists and is not a folder")
    previous = out / RESOLVED_NAME
    if previous.is_file():
        changed = setting_changes(previous, config)
        if changed:
            raise UserError(f"{out} holds a run made with other settings ({', '.join(changed)}); choose a new --out")
    elif out.is_dir() and any(out.iterdir()):
        raise UserError(f"{out} is not empty and is not a run folder; choose a new --out")
    write_resolved(config, out, extra={"code_version": __version__})


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the process exit status."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.WARNING if args.quiet else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
    )
    try:
        return args.func(args)
    except UserError as e:
        cause = getattr(e, "cause", None)  # raised inside a Ray task: Ray wraps it with the remote traceback
        print(f"error: {cause if isinstance(cause, UserError) else e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
