#!/usr/bin/env python3
"""Ratio table (and an SVG plot) of two bench.sh JSON results: Mosquitto and Roost from one
sitting, checked against issue #5's targets.

usage: scripts/bench-table.py MOSQUITTO.json ROOST.json [--markdown FILE] [--svg FILE]

Prints the table; exit status 0 whatever the verdicts (a benchmark is a measurement, not a test).
"""

import argparse
import math
import json
import sys

# scenario -> (what is compared, how the ratio is computed, the target, the stretch or a note)
TARGETS = {
    "a": "throughput >= 5x (stretch 10x)",
    "b": "throughput >= 5x (stretch 10x)",
    "c": "CPU <= 0.3x at the same rate; p99 <= 1x",
    "d": "throughput >= 5x; memory flat; no loss",
    "e": "connect rate >= 1x; <= 3 kB per idle connection (stretch 2 kB)",
    "f": "p50 and p99 <= 0.5x",
}


def load(path):
    with open(path) as handle:
        return json.load(handle)


def fmt_rate(value):
    return "%.1fk" % (value / 1000.0) if value >= 1000 else "%.0f" % value


def ratio(numerator, denominator):
    return numerator / denominator if denominator else float("nan")


def rows(mosquitto, roost):
    """One row per scenario both ran: (scenario, description, mosquitto, roost, ratios, verdict)."""
    result = []
    for key in sorted(set(mosquitto["summary"]) & set(roost["summary"])):
        m = mosquitto["summary"][key]["median"]
        r = roost["summary"][key]["median"]
        desc = roost["summary"][key].get("desc", key)
        clean = all(r.get(field, 0) == 0 for field in ("lost", "dup", "ooo"))
        if key in ("a", "b", "d"):
            x = ratio(r["recv_rate"], m["recv_rate"])
            ok = x >= 5 and clean
            cells = (fmt_rate(m["recv_rate"]) + " msg/s", fmt_rate(r["recv_rate"]) + " msg/s", "%.1fx" % x)
        elif key == "c":
            cpu = ratio(r["broker_cpu"], m["broker_cpu"])
            p99 = ratio(r["p99_us"], m["p99_us"])
            ok = cpu <= 0.3 and p99 <= 1 and clean
            cells = ("CPU %.0f%%, p99 %.0f us" % (m["broker_cpu"], m["p99_us"]),
                     "CPU %.0f%%, p99 %.0f us" % (r["broker_cpu"], r["p99_us"]),
                     "CPU %.2fx, p99 %.2fx" % (cpu, p99))
        elif key == "e":
            rate = ratio(r["connect_rate"], m["connect_rate"])
            ok = rate >= 1 and r["rss_per_conn_kb"] <= 3
            cells = ("%s conn/s, %.2f kB" % (fmt_rate(m["connect_rate"]), m["rss_per_conn_kb"]),
                     "%s conn/s, %.2f kB" % (fmt_rate(r["connect_rate"]), r["rss_per_conn_kb"]),
                     "rate %.2fx" % rate)
        elif key == "f":
            p50 = ratio(r["p50_us"], m["p50_us"])
            p99 = ratio(r["p99_us"], m["p99_us"])
            ok = p50 <= 0.5 and p99 <= 0.5 and clean
            cells = ("p50 %.0f us, p99 %.0f us" % (m["p50_us"], m["p99_us"]),
                     "p50 %.0f us, p99 %.0f us" % (r["p50_us"], r["p99_us"]),
                     "p50 %.2fx, p99 %.2fx" % (p50, p99))
        else:
            continue
        if not clean:
            cells = cells[:2] + (cells[2] + " (lost %d, dup %d, ooo %d)" % (r.get("lost", 0), r.get("dup", 0), r.get("ooo", 0)),)
        result.append((key, desc) + cells + (TARGETS[key], "met" if ok else "not met"))
    return result


def markdown(mosquitto, roost, table):
    lines = [
        "Mosquitto and Roost in one sitting (%s, %d run(s) each, medians, %s)."
        % (roost.get("date", "?"), roost.get("runs", 0), "pinned" if roost.get("pinned") else "unpinned"),
        "",
        "| scenario | Mosquitto | Roost | ratio | target | |",
        "|---|---|---|---|---|---|",
    ]
    for key, desc, m, r, x, target, verdict in table:
        lines.append("| %s: %s | %s | %s | %s | %s | %s |" % (key, desc, m, r, x, target, verdict))
    return "\n".join(lines) + "\n"


def svg(mosquitto, roost):
    """Two panels: throughput of a, b, d (msg/s) and latency p50/p99 of c, f (us), bars side by side."""
    groups = []
    for key in ("a", "b", "d"):
        if key in mosquitto["summary"] and key in roost["summary"]:
            groups.append(("%s throughput" % key, mosquitto["summary"][key]["median"]["recv_rate"],
                           roost["summary"][key]["median"]["recv_rate"], "msg/s"))
    latency = []
    for key in ("c", "f"):
        if key in mosquitto["summary"] and key in roost["summary"]:
            for field in ("p50_us", "p99_us"):
                latency.append(("%s %s" % (key, field[:3]), mosquitto["summary"][key]["median"][field],
                                roost["summary"][key]["median"][field], "us"))
    width, height, panel = 900, 420, 420
    parts = ['<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" font-family="sans-serif" font-size="12">' % (width, height),
             '<rect width="100%" height="100%" fill="white"/>']

    def draw(x0, title, items, log=False):
        parts.append('<text x="%d" y="20" font-size="14" font-weight="bold">%s</text>' % (x0 + 10, title))
        if not items:
            return
        top = max(max(m, r) for _, m, r, _ in items) or 1
        base, span = 360, 300
        if log:
            # Latencies span microseconds to hundreds of milliseconds: bar heights on a log10
            # scale from 10 us, so the short bars stay visible.
            floor = 10.0
            ceiling = math.log10(max(top, floor * 10) / floor)
            height_of = lambda value: span * max(0.0, math.log10(max(value, floor) / floor)) / ceiling
        else:
            height_of = lambda value: span * value / top
        slot = (panel - 40) / len(items)
        for index, (label, m, r, unit) in enumerate(items):
            x = x0 + 30 + index * slot
            for offset, value, colour, name in ((0, m, "#9e9e9e", "Mosquitto"), (slot * 0.38, r, "#1565c0", "Roost")):
                h = height_of(value)
                parts.append('<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="%s"><title>%s %s: %.0f %s</title></rect>'
                             % (x + offset, base - h, slot * 0.34, h, colour, name, label, value, unit))
                parts.append('<text x="%.1f" y="%.1f" font-size="10">%s</text>' % (x + offset, base - h - 3, fmt_rate(value)))
            parts.append('<text x="%.1f" y="%d">%s</text>' % (x, base + 16, label))
    draw(0, "Throughput (msg/s, higher is better)", groups)
    draw(panel + 40, "Latency (us, log scale, lower is better)", latency, log=True)
    parts.append('<rect x="10" y="395" width="12" height="12" fill="#9e9e9e"/><text x="28" y="406">Mosquitto</text>')
    parts.append('<rect x="110" y="395" width="12" height="12" fill="#1565c0"/><text x="128" y="406">Roost</text>')
    parts.append("</svg>")
    return "\n".join(parts) + "\n"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mosquitto")
    parser.add_argument("roost")
    parser.add_argument("--markdown")
    parser.add_argument("--svg")
    args = parser.parse_args()
    mosquitto, roost = load(args.mosquitto), load(args.roost)
    table = rows(mosquitto, roost)
    text = markdown(mosquitto, roost, table)
    sys.stdout.write(text)
    if args.markdown:
        with open(args.markdown, "w") as handle:
            handle.write(text)
    if args.svg:
        with open(args.svg, "w") as handle:
            handle.write(svg(mosquitto, roost))


if __name__ == "__main__":
    main()
