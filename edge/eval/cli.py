"""`edge eval DATASET`: how accurate the box is, and for whom, on the user's own images."""

from __future__ import annotations

import json
import sys

import click

from edge.cli_options import aliased, user_errors
from edge.errors import EdgeError
from edge.watchlist import operating


@click.command("eval")
@click.argument("dataset", type=click.Path(file_okay=False))
@click.option("--config", "config_path", default=None, type=click.Path(dir_okay=False),
              help="The box's TOML config: its detector, quality gate, encoder and threshold are used "
                   "(default: the built-in defaults).")
@click.option("--model", "model_id", default=None,
              help="The face model to evaluate (default: the config's model, else the box's default; "
                   "yunet-mobilefacenet or dlib-resnet).")
@click.option("--groups", "groups_csv", default=None, type=click.Path(dir_okay=False),
              help="CSV of identity,group rows (default: DATASET/groups.csv if present).")
@click.option("--threshold", type=float, default=None,
              help="The distance threshold to report at and mark (default: the one the box derives for a list of the "
                   "first --list-sizes, 1,000 if not given, at the target false-alert rate).")
@click.option("--splits", type=click.IntRange(1, 1000), default=10, show_default=True,
              help="Random enrolled/unlisted splits to repeat the identification test over.")
@click.option("--enrol-share", type=click.FloatRange(0, 1, min_open=True, max_open=True), default=0.5,
              show_default=True, help="Share of identities put on the list in each split.")
@aliased("--refs-per-entry", "refs", old=("--refs",), type=click.IntRange(1, 50), default=1, show_default=True,
              help="Reference images per listed identity.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the random splits.")
@click.option("--recommend", is_flag=True, help="Suggest a threshold meeting --max-fpir.")
@click.option("--max-fpir", type=click.FloatRange(0, 1, min_open=True), default=0.001, show_default=True,
              help="With --recommend: the highest acceptable share of unlisted people who alert.")
@click.option("--plot", "plot_path", default="eval-det.png", show_default=True,
              type=click.Path(dir_okay=False), help="Where to write the DET plot (PNG).")
@click.option("--list-sizes", default=None,
              help="Comma-separated list sizes (e.g. 10,100,1000): open-set FNIR/FPIR per size for both decision "
                   "rules, calibrated on half of the people and measured on the other half.")
@click.option("--target-fpir", type=click.FloatRange(0, operating.MAX_TARGET, min_open=True), default=None,
              help="With --list-sizes: the policy's target (default: match.target_fpir of the config).")
@click.option("--fuse", type=click.IntRange(1, 10), default=1, show_default=True,
              help="With --list-sizes: each search is the mean of this many photos of one person (track fusion).")
@click.option("--calibrate", "calibrate_path", default=None, type=click.Path(dir_okay=False),
              help="Write an impostor calibration of this data set to this file (for match.calibration and "
                   "'enrol build --calibration').")
@click.option("--json", "as_json", is_flag=True, help="Print the full report as JSON (see docs/eval.md).")
@click.option("--progress/--no-progress", default=None,
              help="Show a progress bar while encoding (default: when stderr is a terminal).")
@user_errors
def eval_command(dataset, config_path, model_id, groups_csv, threshold, splits, enrol_share, refs, seed, recommend,
                 max_fpir, list_sizes, target_fpir, fuse, calibrate_path, plot_path, as_json, progress):
    """Measure accuracy on DATASET, a folder of identity subfolders (person/*.jpg).

    Runs the live pipeline's detector, alignment, quality gate and encoder on every image, then
    reports open-set identification (FNIR: listed people missed; FPIR: unlisted people who alert;
    rank-1) over several random splits, verification (ROC, EER), per-group rows when groups.csv is
    given, and a DET plot with the current threshold marked.
    """
    from tqdm import tqdm

    from edge import config as config_mod
    from edge.eval import dataset as dataset_mod
    from edge.eval import encode, plot, report
    from edge.face import encoder as encoders
    from edge.face import model

    if config_path:
        cfg = config_mod.load(config_path)
        det, qual, match, backend = cfg.detect, cfg.quality, cfg.match, cfg.encode.backend
        model_id = model_id or cfg.model
    else:
        det, qual = config_mod.DetectConfig(), config_mod.QualityConfig()
        match, backend = config_mod.MatchConfig(), config_mod.EncodeConfig().backend
    m = model.get(model_id)
    box = _what_the_box_does(m, match, _sizes(list_sizes)[0] if list_sizes else DEFAULT_LIST_SIZE, target_fpir)
    threshold = box["distance_threshold"] if threshold is None else threshold
    if not 0.0 < threshold < 2.0:
        raise EdgeError("--threshold must be between 0 and 2")
    ds = dataset_mod.load(dataset, groups_csv)
    bar = dict(desc="encoding", unit="img", file=sys.stderr, disable=None if progress is None else not progress)
    enc = encode.encode_dataset(ds, qual, m.id, backend, progress=lambda it: tqdm(it, **bar))
    if calibrate_path or list_sizes:
        _at_scale(enc, ds, match, calibrate_path, list_sizes, target_fpir, splits, seed, refs, fuse, as_json,
                  plot_path)
        return
    settings = report.Settings(
        threshold=round(threshold, 4), threshold_floor=match.threshold_floor or m.cap, splits=splits, seed=seed,
        enrol_share=enrol_share, refs=refs, max_fpir=max_fpir if recommend else None,
        encoder=(f"{m.id} ({getattr(encoders.get(backend), 'name', backend)})" if m.id == model.DLIB
                 else m.describe()),  # what "auto" resolved to
        detect={"max_width": det.max_width, "upsample": det.upsample},
        quality={"min_face_px": qual.min_face_px, "min_sharpness": qual.min_sharpness, "max_yaw": qual.max_yaw},
    )
    rep = report.build(ds, enc, settings)
    text = box.pop("text")
    rep["box"] = box  # what the box would do (docs/eval.md)
    plot.det_plot(rep, plot_path)
    if as_json:
        click.echo(json.dumps(rep, indent=1, sort_keys=True))
    else:
        click.echo(text)
        click.echo(report.format_text(rep))
        click.echo(f"\nDET plot written to {plot_path}")


DEFAULT_LIST_SIZE = 1000


def _what_the_box_does(m, match, n: int, target_fpir: float | None) -> dict:
    """The face model, decision rule and threshold the box derives for a list of ``n`` (its calibration for the
    model, the target false-alert rate, its distance cap): what a list of that size is matched at."""
    from edge.watchlist import operating

    target = target_fpir or match.target_fpir
    cap = match.threshold or m.cap
    cal = operating.load_calibration(match.calibration or None, m.id)
    op = operating.derive(cal, n, target, cap, match.rule)
    plain = op if op.rule == "distance" else operating.derive(cal, n, target, cap, "distance")
    text = (f"face model: {m.describe()}\n"
            f"the box, for a list of {n:,} at {operating.one_in(target)} passers-by (calibration {cal.name}): "
            f"{op.describe()}\n"
            f"distance rule at that rate: {plain.threshold:.3f} (marked below)")
    return {"model": m.ref(), "list_size": n, "operating": op.to_json(),
            "distance_threshold": round(plain.threshold, 4), "text": text}


def _sizes(list_sizes: str) -> list[int]:
    try:
        sizes = [int(x) for x in str(list_sizes).split(",") if x.strip()]
        if not sizes or min(sizes) < 1:
            raise ValueError
    except ValueError:
        raise EdgeError(f"--list-sizes {list_sizes!r} is not a comma-separated list of sizes "
                        "like 10,100,1000") from None
    return sizes


def _at_scale(enc, ds, match, calibrate_path, list_sizes, target_fpir, splits, seed, refs, fuse, as_json,
              plot_path):
    """--calibrate and --list-sizes: the operating point's side of the evaluation (edge/eval/scale.py)."""
    from pathlib import Path

    from edge.eval import plot, scale
    from edge.face import model
    from edge.files import write_atomic
    from edge.watchlist import operating

    if calibrate_path:
        cal = operating.calibrate(enc.descriptors, enc.labels, name=f"{Path(ds.root).name}-{enc.model}",
                                  source=f"{ds.root} ({len(set(enc.labels.tolist()))} people, face model "
                                         f"{enc.model})", seed=seed, model_id=enc.model)
        write_atomic(Path(calibrate_path), (json.dumps(cal.to_json(), separators=(",", ":")) + "\n").encode())
        click.echo(f"calibration of {cal.identities} people, list sizes up to {cal.sizes[-1]}, written to "
                   f"{calibrate_path}", err=as_json)
    if not list_sizes:
        return
    sizes = _sizes(list_sizes)
    target = target_fpir or match.target_fpir
    cap = match.threshold or model.get(enc.model).cap
    rep = scale.evaluate(enc.descriptors, enc.labels, sizes, splits, seed, target, cap, refs, fuse, model_id=enc.model)
    plot.scale_plot(rep, plot_path)
    click.echo(json.dumps(rep, indent=1, sort_keys=True) if as_json else scale.format_table(rep))
    if not as_json:
        click.echo(f"DET plot per list size written to {plot_path}")
