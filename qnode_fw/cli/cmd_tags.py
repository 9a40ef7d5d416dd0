"""``qnode tags FILE``: offline analysis of a tag file (PTU T2 or the project's ``.npz``).

Counts per channel, first and last timestamp, coincidences for channel pairs (window and delay,
as Swabian ``Coincidences``), a cross-correlation histogram (as Swabian ``Correlation``), ``--json``
for machines and ``--plot FILE`` for people.
"""

from __future__ import annotations

import argparse
import json
import sys

import numpy as np

from qnode_fw.errors import ConfigError


def _pair(text: str) -> tuple[int, int]:
    try:
        a, b = (int(x) for x in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"channel pair {text!r} is not A,B") from None
    return a, b


def register(subparsers) -> None:
    p = subparsers.add_parser("tags", help="analyse a time-tag file (PTU T2 or .npz)",
                              description=__doc__)
    p.add_argument("file", help="tag file: .ptu (PicoQuant T2) or .npz (qnode-fw)")
    p.add_argument("--pair", type=_pair, action="append", default=[], metavar="A,B",
                   help="channel pair for coincidences (repeatable)")
    p.add_argument("--window-ps", type=int, default=1000, help="coincidence window (ps), default 1000")
    p.add_argument("--delay-ps", type=int, default=0, help="delay of B relative to A (ps), default 0")
    p.add_argument("--correlate", type=_pair, metavar="A,B",
                   help="channel pair for the correlation histogram (default: the first --pair)")
    p.add_argument("--binwidth-ps", type=int, default=100, help="histogram bin width (ps)")
    p.add_argument("--bins", type=int, default=200, help="number of histogram bins")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.add_argument("--plot", metavar="FILE", help="write counts and the histogram to an image")
    p.set_defaults(func=handle)


def analyse(args) -> dict:
    from timing.detection import correlation_histogram, count_coincidences
    from timing.tagfile import load_tags

    if args.window_ps < 0 or args.binwidth_ps <= 0 or args.bins <= 0:
        raise ConfigError("window must be >= 0, bin width and bins > 0", field="--window-ps/--binwidth-ps/--bins")
    tags = load_tags(args.file)
    ch, ts = tags.channels, tags.timestamps_ps
    chans, counts = np.unique(ch, return_counts=True)
    result = {
        "file": args.file,
        "format": tags.source,
        "tags": int(ts.size),
        "first_ps": int(ts[0]) if ts.size else None,
        "last_ps": int(ts[-1]) if ts.size else None,
        "counts": {str(int(c)): int(n) for c, n in zip(chans, counts)},
        "coincidences": [
            {"a": a, "b": b, "window_ps": args.window_ps, "delay_ps": args.delay_ps,
             "count": count_coincidences(ch, ts, a, b, window_ps=args.window_ps,
                                         delay_ps=args.delay_ps)}
            for a, b in args.pair
        ],
    }
    corr = args.correlate or (args.pair[0] if args.pair else None)
    if corr is not None:
        centres, hist = correlation_histogram(ch, ts, corr[0], corr[1],
                                              binwidth_ps=args.binwidth_ps, n_bins=args.bins)
        result["correlation"] = {"a": corr[0], "b": corr[1], "binwidth_ps": args.binwidth_ps,
                                 "bin_centres_ps": centres.tolist(), "counts": hist.tolist()}
    return result


def _plot(result: dict, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    has_corr = "correlation" in result
    fig, axes = plt.subplots(1, 2 if has_corr else 1, figsize=(10 if has_corr else 5, 3.5))
    axes = np.atleast_1d(axes)
    axes[0].bar(list(result["counts"]), list(result["counts"].values()))
    axes[0].set_xlabel("channel")
    axes[0].set_ylabel("tags")
    if has_corr:
        c = result["correlation"]
        axes[1].step(np.array(c["bin_centres_ps"]) / 1000, c["counts"], where="mid")
        axes[1].set_xlabel(f"t{c['b']} - t{c['a']} (ns)")
        axes[1].set_ylabel("pairs per bin")
    fig.suptitle(result["file"], fontsize=9)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def handle(args) -> int:
    result = analyse(args)
    if args.plot:
        _plot(result, args.plot)
    if args.json:
        json.dump(result, sys.stdout)
        sys.stdout.write("\n")
        return 0
    print(f"{result['file']}: {result['tags']} tags ({result['format']}), "
          f"first {result['first_ps']} ps, last {result['last_ps']} ps")
    for c, n in result["counts"].items():
        print(f"  channel {c:>3}: {n}")
    for co in result["coincidences"]:
        print(f"  coincidences {co['a']},{co['b']} window {co['window_ps']} ps delay "
              f"{co['delay_ps']} ps: {co['count']}")
    if "correlation" in result:
        c = result["correlation"]
        peak = int(np.argmax(c["counts"]))
        print(f"  correlation {c['a']},{c['b']}: peak {c['counts'][peak]} at "
              f"{c['bin_centres_ps'][peak]:.0f} ps")
    if args.plot:
        print(f"  plot written to {args.plot}")
    return 0
