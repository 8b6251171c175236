"""The DET plot (FNIR against FPIR as the threshold moves), drawn from the report dict.

Left, the DET curve: one thin line per random split (the spread), the mean in bold, the current threshold marked, the
recommended one too when asked for, each group's point at the current threshold; log axes: a rate
of 0 cannot be drawn on them, so it is drawn at half the smallest measurable rate, on the floor line.
Written with matplotlib's Agg backend (no display needed), atomically (temp file + rename).
"""

from __future__ import annotations

from pathlib import Path

from edge.files import write_atomic


def det_plot(rep: dict, path: str | Path) -> Path:
    """Left: the DET curve (log axes). Right: FNIR and FPIR against the threshold (what to set)."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    fig = Figure(figsize=(10, 4.4), dpi=90)
    det_ax, thr_ax = fig.subplots(1, 2, gridspec_kw={"width_ratios": [1.1, 1]})
    _det(det_ax, rep)
    _by_threshold(thr_ax, rep)
    fig.suptitle(f"edge eval: {rep['images']['usable']} usable images of {rep['images']['identities']} "
                 f"identities, {len(rep['identification']['curve']['fnir_by_split'])} random splits",
                 fontsize=10)
    fig.tight_layout()
    return _save(fig, path)


def _det(ax, rep: dict) -> None:
    idn = rep["identification"]
    curve = idn["curve"]
    ts, splits = curve["thresholds"], len(curve["fnir_by_split"])
    # half the smallest non-zero mean rate: where a 0 is drawn on log axes
    x_floor = 0.5 / (splits * idn["non_mated_searches_per_split"]["max"])
    y_floor = 0.5 / (splits * idn["mated_searches_per_split"]["max"])

    def clip(v, floor):
        return [max(floor, a) for a in v]

    for fn, fp in zip(curve["fnir_by_split"], curve["fpir_by_split"], strict=True):
        ax.plot(clip(fp, x_floor), clip(fn, y_floor), color="0.78", lw=0.8)
    ax.plot(clip(curve["fpir_mean"], x_floor), clip(curve["fnir_mean"], y_floor), color="C0", lw=2,
            label="mean (grey: each split)")

    def mark(t, style, label):
        k = ts.index(round(t, 4))
        ax.plot([max(x_floor, curve["fpir_mean"][k])], [max(y_floor, curve["fnir_mean"][k])], style, ms=9,
                label=f"{label} {t:.2f}")

    t = rep["settings"]["threshold"]
    mark(t, "o", "current threshold")
    rec = rep.get("recommendation")
    if rec and rec["threshold"] is not None and rec["threshold"] != t:
        mark(rec["threshold"], "D", f"recommended for FPIR <= {rec['max_fpir']}:")
    for i, g in enumerate(rep["groups"]):
        if g["fnir"]["mean"] is not None and g["fpir"]["mean"] is not None:
            ax.plot([max(x_floor, g["fpir"]["mean"])], [max(y_floor, g["fnir"]["mean"])], "s", ms=6,
                    color=f"C{(i + 2) % 10}", label=f"group {g['group']} ({g['identities']} ids) at {t:.2f}")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlim(x_floor * 0.7, 1.1)
    ax.set_ylim(y_floor * 0.7, 1.1)
    ax.axvline(x_floor, color="0.6", ls=":", lw=1)
    ax.axhline(y_floor, color="0.6", ls=":", lw=1)
    ax.set_xlabel("FPIR: unlisted people who alert")
    ax.set_ylabel("FNIR: listed people missed")
    ax.set_title("DET curve (a 0 is drawn on the dotted line)", fontsize=9)
    ax.grid(True, which="both", color="0.93")
    ax.legend(fontsize=7, loc="upper right")


def _by_threshold(ax, rep: dict) -> None:
    curve = rep["identification"]["curve"]
    ts = curve["thresholds"]
    for key, color, label in (("fnir", "C3", "FNIR: listed people missed"),
                              ("fpir", "C1", "FPIR: unlisted people who alert")):
        mean, sd = curve[f"{key}_mean"], curve[f"{key}_sd"]
        ax.plot(ts, mean, color=color, lw=2, label=label)
        ax.fill_between(ts, [max(0.0, m - s) for m, s in zip(mean, sd, strict=True)],
                        [min(1.0, m + s) for m, s in zip(mean, sd, strict=True)], color=color, alpha=0.18)
    t = rep["settings"]["threshold"]
    ax.axvline(t, color="C0", lw=1.5, label=f"current threshold {t:.2f}")
    rec = rep.get("recommendation")
    if rec and rec["threshold"] is not None:
        ax.axvline(rec["threshold"], color="C2", ls="--", lw=1.2,
                   label=f"recommended {rec['threshold']:.2f} (FPIR <= {rec['max_fpir']})")
    ax.set_xlim(ts[0], ts[-1])
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlabel("threshold (face distance; lower is stricter)")
    ax.set_ylabel("rate (band: ± 1 sd over splits)")
    ax.set_title("Error rates against the threshold", fontsize=9)
    ax.grid(True, color="0.93")
    ax.legend(fontsize=7, loc="center left")


def scale_plot(rep: dict, path: str | Path) -> Path:
    """``--list-sizes``: the DET curve of each rule at each list size (log axes), target marked."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6.4, 4.6), dpi=90)
    ax = fig.subplots()
    styles = {"ratio": "-", "distance": "--"}
    for i, (n, size) in enumerate(rep["sizes"].items()):
        colour = f"C{i}"
        for rule, r in size["rules"].items():
            det = [(f, max(fn, 1e-3)) for f, fn in r["det"]]
            ax.plot([f for f, _ in det], [fn for _, fn in det], styles.get(rule, ":"), color=colour,
                    label=f"{n} entries, {rule}{' (adopted)' if rule == rep['adopted_rule'] else ''}")
    ax.axvline(rep["target_fpir"], color="grey", lw=0.8, label="the policy's target FPIR")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("FPIR: share of passers-by who alert")
    ax.set_ylabel("FNIR: share of listed people missed")
    ax.set_title(f"DET per list size: people held out from calibration, mean of {rep['splits']} splits",
                 fontsize=9)
    from matplotlib.ticker import PercentFormatter

    ax.xaxis.set_major_formatter(PercentFormatter(1.0, decimals=1))
    ax.yaxis.set_major_formatter(PercentFormatter(1.0, decimals=0))
    ax.yaxis.set_minor_formatter(PercentFormatter(1.0, decimals=0))
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return _save(fig, path)


def _save(fig, path: str | Path) -> Path:
    write_atomic(path, lambda f: fig.savefig(f, format="png"))
    return Path(path)
