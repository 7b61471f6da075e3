"""
table.py: results of one suite, printed as a table of medians next to the baselines.

Each row is a workload with a unit and, per column (scoutfs first, then its baselines), the
values measured in every round.  A cell prints as `median (min-max)`; a workload that failed or
timed out prints what happened instead, and the row keeps going for the other columns.  The
ratio columns divide the first column's median by each baseline's: for rates (ops/s, MiB/s,
IOPS) above 1 is faster than the baseline; for latencies (us) above 1 is slower.
"""
import statistics

LOWER_IS_BETTER = {"us"}


def si(v):
    """A value in 4 significant digits with a k or M suffix."""
    if v is None:
        return "-"
    for div, suffix in ((1e6, "M"), (1e3, "k")):
        if abs(v) >= div * 10:
            return f"{v / div:.4g}{suffix}"
    return f"{v:.4g}"


class Cell:
    def __init__(self):
        self.samples = []
        self.disturbed = 0  # samples during which another process dropped the caches
        self.error = None

    def add(self, value, disturbed=False):
        self.samples.append(value)
        self.disturbed += bool(disturbed)

    def fail(self, what):
        self.error = self.error or what

    def median(self):
        return statistics.median(self.samples) if self.samples and not self.error else None

    def text(self):
        if self.error:
            return self.error
        if not self.samples:
            return "-"
        lo, hi = min(self.samples), max(self.samples)
        if len(self.samples) == 1:
            return si(self.median())
        return f"{si(self.median())} ({si(lo)}-{si(hi)})"

    def as_json(self):
        if self.error:
            return {"error": self.error}
        if not self.samples:
            return None
        return {"median": self.median(), "min": min(self.samples), "max": max(self.samples),
                "samples": self.samples, "disturbed": self.disturbed}


class Row:
    def __init__(self, table, workload, unit):
        self.workload = workload
        self.unit = unit
        self.cells = {c: Cell() for c in table.columns}


class Table:
    def __init__(self, suite, title, columns):
        self.suite = suite
        self.title = title
        self.columns = columns
        self.rows = []
        self.by_name = {}
        self.notes = []

    def row(self, workload, unit):
        if workload not in self.by_name:
            r = Row(self, workload, unit)
            self.rows.append(r)
            self.by_name[workload] = r
        return self.by_name[workload]

    def add(self, workload, unit, column, value, disturbed=False):
        self.row(workload, unit).cells[column].add(value, disturbed)

    def fail(self, workload, unit, column, what):
        self.row(workload, unit).cells[column].fail(what)

    def note(self, text):
        self.notes.append(text)

    def ratio(self, row, baseline):
        a = row.cells[self.columns[0]].median()
        b = row.cells[baseline].median()
        if a is None or b is None or b == 0:
            return None
        return a / b

    def lines(self):
        base = self.columns[1:]
        head = ["workload", "unit", *self.columns] + [f"{self.columns[0]}/{b}" for b in base]
        body = []
        for r in self.rows:
            ratios = [self.ratio(r, b) for b in base]
            body.append([r.workload, r.unit, *(r.cells[c].text() for c in self.columns),
                         *("-" if x is None else f"{x:.2f}" for x in ratios)])
        widths = [max(len(x[i]) for x in [head] + body) for i in range(len(head))]

        def fmt(cols):
            return "  ".join(c.ljust(w) for c, w in zip(cols, widths)).rstrip()

        out = [f"== {self.suite}: {self.title}", fmt(head)]
        out += [fmt(b) for b in body]
        out += [f"   note: {n}" for n in self.notes + self.disturbances()]
        return out

    def disturbances(self):
        """Which samples another process's drop_caches may have made cold (or colder)."""
        hit = []
        for r in self.rows:
            cols = [f"{c} {r.cells[c].disturbed}/{len(r.cells[c].samples)}"
                    for c in self.columns if r.cells[c].disturbed]
            if cols:
                hit.append(f"{r.workload} ({', '.join(cols)})")
        if not hit:
            return []
        return ["another process dropped the kernel caches during some samples (/proc/vmstat "
                "drop_slab): " + "; ".join(hit)]

    def as_json(self):
        return {
            "title": self.title,
            "columns": self.columns,
            "rows": [{
                "workload": r.workload,
                "unit": r.unit,
                "cells": {c: r.cells[c].as_json() for c in self.columns},
                "ratios": {b: self.ratio(r, b) for b in self.columns[1:]},
            } for r in self.rows],
            "notes": self.notes + self.disturbances(),
        }
