"""The printed report of bench/compare.py: what the issue's targets are judged on, in one place."""

from __future__ import annotations

import math
from typing import Any

from _common import format_table

PEER_TARGETS = {"scim2-server": 1.5, "django-scim2": 3.0}
FLOOR_TARGET = 0.5
GROWTH_TARGET = 1.2
TABLE_OPERATIONS = ("user filter", "user POST", "user PATCH")


def verdict(ok: bool | None) -> str:
    return "-" if ok is None else ("PASS" if ok else "FAIL")


def ms(value: float | None) -> str:
    return "-" if value is None or math.isnan(value) else f"{value:.1f}"


def ratio(a: float, b: float) -> float | None:
    return a / b if a and b else None


def cycle_rows(cycles: dict[str, dict[str, Any]]) -> str:
    rows = []
    for server, cycle in cycles.items():
        ops = cycle["operations"]
        cut = any(p["cut_short"] for p in cycle["phases"].values())
        rows.append(
            [
                server,
                f"{cycle['requests']:,} req in {cycle['seconds']:.1f} s" + (" (CUT SHORT)" if cut else ""),
                f"{cycle['requests_per_second']:.1f}",
                *(ms(ops.get(op, {}).get("p50_ms")) for op in TABLE_OPERATIONS),
                str(cycle["unexpected"]),
            ]
        )
    headers = [
        "server",
        "cycle",
        "req/s",
        "user filter p50 ms",
        "user POST p50 ms",
        "user PATCH p50 ms",
        "unexpected",
    ]
    return format_table(headers, rows)


def phase_comparison(cycles: dict[str, dict[str, Any]]) -> tuple[str, dict[str, Any]]:
    """Per phase: every server's req/s and unexpected count, SecureLogin's ratio to each peer, PASS/FAIL."""
    ours = cycles.get("SecureLogin")
    peers = [p for p in PEER_TARGETS if p in cycles]
    verdicts: dict[str, Any] = {}
    rows = []
    names = list(ours["phases"]) if ours else []
    for phase in [*names, "whole cycle"]:

        def rate(server: str, phase: str = phase) -> float:
            cycle = cycles[server]
            return (
                cycle["requests_per_second"]
                if phase == "whole cycle"
                else cycle["phases"][phase]["requests_per_second"]
            )

        def unexpected(server: str, phase: str = phase) -> int:
            cycle = cycles[server]
            return cycle["unexpected"] if phase == "whole cycle" else cycle["phases"][phase]["unexpected"]

        row = [phase]
        for server in cycles:
            row.append(f"{rate(server):.1f} ({unexpected(server)})")
        verdicts[phase] = {}
        for peer in peers:
            r = ratio(rate("SecureLogin"), rate(peer)) if ours else None
            ok = None if r is None else (r >= PEER_TARGETS[peer] and unexpected("SecureLogin") == 0)
            verdicts[phase][peer] = {"ratio": r, "target": PEER_TARGETS[peer], "pass": ok}
            row += [f"{r:.2f}×" if r else "-", f"≥{PEER_TARGETS[peer]:g}× {verdict(ok)}"]
        rows.append(row)
    headers = ["phase", *(f"{s} req/s (unexpected)" for s in cycles)]
    for peer in peers:
        headers += [f"SL/{peer}", "target"]
    return format_table(headers, rows), verdicts


def unsupported(cycles: dict[str, dict[str, Any]]) -> list[str]:
    """One line per operation a server answered with unexpected statuses, with a sample answer."""
    lines = []
    for server, cycle in cycles.items():
        for op, stats in cycle["operations"].items():
            if not stats["unexpected"]:
                continue
            sample = (cycle["unexpected_samples"].get(op) or [""])[0].replace("\n", " ")[:160]
            every = (
                " (ALL of them: it cannot do this request)"
                if stats["unexpected"] == stats["requests"]
                else ""
            )
            lines.append(
                f"  {server}: {op}: {stats['unexpected']:,} of {stats['requests']:,} unexpected{every}; "
                f"statuses {stats['statuses']}; e.g. {sample}"
            )
    return lines


def floor_section(floor: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    rows = [
        [
            name,
            str(r["requests"]),
            f"{r['requests_per_second']:.1f}",
            ms(r["p50_ms"]),
            ms(r["p95_ms"]),
            str(r["unexpected"]),
        ]
        for name, r in floor["loads"].items()
    ]
    table = format_table(
        ["at c=" + str(floor["clients"]), "requests", "req/s", "p50 ms", "p95 ms", "unexpected"], rows
    )
    ours = floor["loads"].get('SecureLogin GET /Users?filter=userName eq "…"')
    two = floor["loads"].get("floor: two indexed queries")
    share = ratio(ours["requests_per_second"], two["requests_per_second"]) if ours and two else None
    ok = None if share is None else share >= FLOOR_TARGET and ours["unexpected"] == 0
    line = (
        f"SecureLogin's userName filter = {share:.0%} of the two-query floor "
        f"(target ≥ {FLOOR_TARGET:.0%}): {verdict(ok)}"
        if share is not None
        else "SecureLogin's userName filter vs the floor: not measured"
    )
    return f"{table}\n{line}", {"share": share, "target": FLOOR_TARGET, "pass": ok}


def growth_section(growth: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    small, large = growth["small"], growth["large"]
    rows, verdicts = [], {}
    for op in [*small]:
        a, b = small[op]["median_ms"], large[op]["median_ms"]
        r = b / a if a and not math.isnan(a) and not math.isnan(b) else None
        judged = not op.startswith("group PATCH remove")
        bad = (
            large[op]["unexpected"]
            + small[op]["unexpected"]
            + large[op]["wrong_results"]
            + small[op]["wrong_results"]
        )
        ok = (r is not None and r <= GROWTH_TARGET and bad == 0) if judged else None
        verdicts[op] = {"ratio": r, "target": GROWTH_TARGET if judged else None, "pass": ok}
        rows.append(
            [
                op,
                f"{ms(a)} ({small[op]['requests']})",
                f"{ms(b)} ({large[op]['requests']})",
                f"{r:.2f}×" if r else "-",
                f"≤{GROWTH_TARGET:g}× {verdict(ok)}" if judged else "(info)",
                str(bad),
            ]
        )
    headers = [
        "operation (sequential, 1 client)",
        f"{growth['sizes']['small']} median ms (n)",
        f"{growth['sizes']['large']} median ms (n)",
        "ratio",
        "target",
        "unexpected/wrong",
    ]
    return format_table(headers, rows), verdicts


def matrix_section(matrix: dict[str, dict[str, Any]]) -> str:
    rows = []
    for config, result in matrix.items():
        cycle = result["cycle"]
        rows.append(
            [
                config,
                f"{cycle['requests_per_second']:.1f}",
                *(f"{p['requests_per_second']:.1f}" for p in cycle["phases"].values()),
                f"{result['filter']['requests_per_second']:.1f}",
                str(cycle["unexpected"] + result["filter"]["unexpected"]),
            ]
        )
    phases = list(next(iter(matrix.values()))["cycle"]["phases"]) if matrix else []
    return format_table(
        ["gunicorn", "cycle req/s", *(f"{p} req/s" for p in phases), "filter c=8 req/s", "unexpected"], rows
    )
