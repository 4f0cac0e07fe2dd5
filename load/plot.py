"""Latency percentiles and throughput over time from a Locust CSV run, as a PNG (plus a Markdown summary).

    python load/plot.py load/results/load      # reads load_stats_history.csv and load_stats.csv
                                               # writes load.png and load_summary.md beside them

Top panel: p50 / p95 / p99 response time (ms) of all requests, from Locust's stats history: over a sliding
window of about the last 10 s when Locust ran with --csv-full-history (as `make load`, `make soak` and the
tests do; otherwise Locust writes them cumulative since the start, and the axis says so). Bottom panel:
requests/s and failures/s, with the number of users on a second axis; with --rss (soak.py's samples) a third
panel shows the service's memory. matplotlib is imported only here, so the locustfile does not need it.
"""
from __future__ import annotations

import argparse
import csv
from pathlib import Path


def _num(x: str) -> float | None:
    try:
        return float(x)
    except ValueError:
        return None            # "N/A" before the first response


def read_history(path: Path) -> list[dict]:
    """The aggregated rows of a *_stats_history.csv, with t in seconds from the first row; each row's
    "window" says whether its percentiles are of the last ~10 s (a --csv-full-history run) or cumulative."""
    with path.open(newline="") as f:
        every = list(csv.DictReader(f))
    windowed = any(r["Name"] != "Aggregated" for r in every)     # per-name rows: Locust's --csv-full-history
    rows = [r for r in every if r["Name"] == "Aggregated"]
    if not rows:
        raise SystemExit(f"{path}: no aggregated rows (did Locust run with --csv?)")
    t0 = float(rows[0]["Timestamp"])
    return [{"t": float(r["Timestamp"]) - t0, "users": int(r["User Count"]), "rps": float(r["Requests/s"]),
             "fps": float(r["Failures/s"]), "p50": _num(r["50%"]), "p95": _num(r["95%"]), "p99": _num(r["99%"]),
             "window": windowed}
            for r in rows]


def summary_table(stats_csv: Path) -> str:
    """A Markdown table of *_stats.csv: per request name and the aggregate."""
    with stats_csv.open(newline="") as f:
        rows = list(csv.DictReader(f))
    lines = ["| request | requests | failures | req/s | p50 ms | p95 ms | p99 ms | max ms |",
             "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        name = f"**{r['Name']}**" if r["Name"] == "Aggregated" else f"{r['Type']} {r['Name']}"
        lines.append(f"| {name} | {r['Request Count']} | {r['Failure Count']} | {float(r['Requests/s']):.1f} "
                     f"| {r['50%']} | {r['95%']} | {r['99%']} | {float(r['Max Response Time']):.0f} |")
    return "\n".join(lines) + "\n"


def read_rss(path: Path) -> list[tuple[float, float]]:
    """(seconds, RSS bytes) rows of soak.py's PREFIX_rss.csv."""
    with path.open(newline="") as f:
        return [(float(r["seconds"]), float(r["rss_bytes"])) for r in csv.DictReader(f)]


def plot(history: list[dict], out: Path, title: str, rss: list[tuple[float, float]] | None = None) -> None:
    """Latency percentiles over requests/s (and users); with `rss`, a third panel of the service's memory."""
    import matplotlib
    import matplotlib.ticker
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t = [h["t"] for h in history]
    ratios = [3, 2, 2] if rss else [3, 2]
    fig, axes = plt.subplots(len(ratios), 1, figsize=(10, 7 + 2.5 * bool(rss)), sharex=True,
                             gridspec_kw={"height_ratios": ratios})
    lat, thr = axes[0], axes[1]
    for key, style in (("p50", "-"), ("p95", "--"), ("p99", ":")):
        lat.plot(t, [h[key] or float("nan") for h in history], style, label=key)   # no data yet: a gap
    lat.set_ylabel("response time, ms " + ("(last 10 s)" if history[0]["window"] else "(since start)"))
    lat.set_yscale("log")
    lat.yaxis.set_major_locator(matplotlib.ticker.LogLocator(subs=(1.0, 2.0, 5.0)))
    lat.yaxis.set_major_formatter(matplotlib.ticker.ScalarFormatter())
    lat.yaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    lat.grid(True, which="both", alpha=0.3)
    lat.legend(loc="upper left")
    lat.set_title(title)
    thr.plot(t, [h["rps"] for h in history], label="requests/s", color="tab:green")
    thr.plot(t, [h["fps"] for h in history], label="failures/s", color="tab:red")
    thr.set_ylabel("per second")
    axes[-1].set_xlabel("seconds since start")
    thr.grid(True, alpha=0.3)
    users = thr.twinx()
    users.step(t, [h["users"] for h in history], where="post", color="tab:gray", alpha=0.6, label="users")
    users.set_ylabel("users")
    users.set_ylim(bottom=0)
    handles = thr.get_legend_handles_labels()[0] + users.get_legend_handles_labels()[0]
    thr.legend(handles, [h.get_label() for h in handles], loc="upper left")
    if rss:
        axes[2].plot([x for x, _ in rss], [b / 2**20 for _, b in rss], color="tab:purple", marker=".", ms=3)
        axes[2].set_ylabel("service RSS, MiB")
        axes[2].set_ylim(bottom=0)
        axes[2].grid(True, alpha=0.3)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("prefix", type=Path, help="the --csv prefix Locust ran with (e.g. load/results/load)")
    p.add_argument("--out", type=Path, default=None, help="PNG path [default: PREFIX.png]")
    p.add_argument("--title", default=None)
    p.add_argument("--rss", type=Path, default=None, help="add soak.py's PREFIX_rss.csv as a memory panel")
    args = p.parse_args(argv)
    prefix = args.prefix
    history = read_history(prefix.parent / f"{prefix.name}_stats_history.csv")
    out = args.out or prefix.parent / f"{prefix.name}.png"
    plot(history, out, args.title or f"Locust run {prefix.name}: {history[-1]['t']:.0f} s, "
                                      f"up to {max(h['users'] for h in history)} users",
         rss=read_rss(args.rss) if args.rss else None)
    print(f"wrote {out}")
    stats = prefix.parent / f"{prefix.name}_stats.csv"
    if stats.exists():
        md = prefix.parent / f"{prefix.name}_summary.md"
        md.write_text(summary_table(stats))
        print(f"wrote {md}")


if __name__ == "__main__":
    main()
