#!/usr/bin/env python3
"""Where a Go server's CPU went: reads CPU profiles from `/debug/pprof/profile` (Prometheus
serves it) and prints, per profile, the CPU time under a few functions of Prometheus' query
path, side by side.

    curl -so a.pb.gz 'http://127.250.9.1:9090/debug/pprof/profile?seconds=30'
    bench/fleet/pprof.py none.pb.gz auto.pb.gz auto-instances.pb.gz
    bench/fleet/pprof.py --top 40 auto.pb.gz     # the functions with the most CPU under them

A time is the CPU of every sample whose stack holds the function (a function that calls
itself counts once). The decoder reads the fields of profile.proto that this needs and
nothing else; it depends on no package.
"""

import argparse
import collections
import gzip
import sys

# (column, a substring of the Go function's name). Select runs in goroutines of its own,
# so the HTTP handler's time does not hold it.
FUNCTIONS = [
    ("HTTP requests", "net/http.(*conn).serve"),
    ("parse query", "promql/parser.ParseExpr"),
    ("regex compile", "grafana/regexp.Compile"),
    ("select series", "storage.(*mergeGenericQuerier).Select.func2"),
    ("postings", "tsdb.PostingsForMatchers"),
    ("label values", "index.(*MemPostings).LabelValues"),
    ("regex match", "labels.(*FastRegexMatcher).MatchString"),
    ("GC workers", "runtime.gcBgMarkWorker"),
    ("GC assist", "runtime.gcAssistAlloc"),
    ("rule groups", "rules.(*Group).Eval"),
    ("scrapes", "scrape.(*scrapeLoop).run"),
]


def varint(data, i):
    value = shift = 0
    while True:
        byte = data[i]
        i += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if byte < 0x80:
            return value, i


def fields(data):
    """(field number, wire type, value) of one protobuf message."""
    i = 0
    while i < len(data):
        key, i = varint(data, i)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, i = varint(data, i)
        elif wire == 2:
            length, i = varint(data, i)
            value, i = data[i:i + length], i + length
        elif wire == 1:
            value, i = data[i:i + 8], i + 8
        elif wire == 5:
            value, i = data[i:i + 4], i + 4
        else:
            raise ValueError(f"wire type {wire} at byte {i}")
        yield number, wire, value


def integers(wire, value):
    """A repeated integer field: packed (wire type 2) or one value."""
    if wire == 0:
        return [value]
    out, i = [], 0
    while i < len(value):
        n, i = varint(value, i)
        out.append(n)
    return out


def samples(path):
    """[(function names of the stack, leaf first; CPU ns)] of one profile."""
    data = gzip.open(path).read()
    strings, raw, locations, functions = [], [], {}, {}
    for number, wire, value in fields(data):
        if number == 6:  # string_table
            strings.append(value.decode("utf-8", "replace"))
        elif number == 2:  # sample: location_id (1), value (2)
            ids, values = [], []
            for n, w, v in fields(value):
                if n == 1:
                    ids += integers(w, v)
                elif n == 2:
                    values += integers(w, v)
            raw.append((ids, values))
        elif number == 4:  # location: id (1), line (4) → function_id (1)
            location, lines = None, []
            for n, w, v in fields(value):
                if n == 1:
                    location = v
                elif n == 4:
                    lines += [fv for fn, _, fv in fields(v) if fn == 1]
            locations[location] = lines
        elif number == 5:  # function: id (1), name (2, a string index)
            function, name = None, 0
            for n, w, v in fields(value):
                if n == 1:
                    function = v
                elif n == 2:
                    name = v
            functions[function] = name
    names = {f: strings[s] for f, s in functions.items()}
    # The last value of a CPU profile's sample is its CPU time in nanoseconds.
    return [([names[f] for loc in ids for f in locations.get(loc, [])], values[-1])
            for ids, values in raw]


def cumulative(stacks):
    out = collections.Counter()
    for stack, ns in stacks:
        for name in set(stack):
            out[name] += ns
    return out


def table(path):
    """{"total": s, column: s, …}: one profile's CPU seconds under each of [`FUNCTIONS`]."""
    stacks = samples(path)
    names = cumulative(stacks)
    out = {"total": sum(ns for _, ns in stacks) / 1e9}
    for column, needle in FUNCTIONS:
        out[column] = max((ns for name, ns in names.items() if needle in name), default=0) / 1e9
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("profiles", nargs="+")
    parser.add_argument("--top", type=int, help="list the N functions with the most CPU instead")
    args = parser.parse_args()
    if args.top:
        for path in args.profiles:
            stacks = samples(path)
            total = sum(ns for _, ns in stacks)
            print(f"{path}: {total / 1e9:.2f} s of CPU")
            for name, ns in cumulative(stacks).most_common(args.top):
                print(f"{ns / 1e9:8.2f} s {100 * ns / total:5.1f}%  {name}")
        return
    header = ["profile", "total"] + [column for column, _ in FUNCTIONS]
    print("CPU seconds under each function")
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for path in args.profiles:
        print(f"| {path} | " + " | ".join(f"{t:.2f}" for t in table(path).values()) + " |")


if __name__ == "__main__":
    sys.exit(main())
