#!/usr/bin/env python3
"""Sorts the rows of `duplicates --most 200` by what the two places share.

Usage, from the repository's root:
    duplicates --most 200 | python3 scripts/duplicates-sort.py

A side that is mostly import paths is "imports"; one that is mostly struct
fields with json/yaml tags, or error variables, is "declarations"; one that
opens a test, fuzz target or benchmark is "test heads"; the rest is "other",
to be read one by one (docs/duplicates.md). Prints each group with its rows.
"""
import collections
import re
import sys

ROW = re.compile(r'(D\d+) (\S+):(\d+)-(\d+) ~ (\S+):(\d+)-(\d+)')
IMPORT = re.compile(r'^("[^"]+"|[A-Za-z_.]+ "[^"]+"|\)|import \()$')
TAG = re.compile(r'`(json|yaml):')
ERRVAR = re.compile(r'^\w+\s+=\s+errors\.New')


def kind(lines):
    code = [l.strip() for l in lines if l.strip() and not l.strip().startswith('//')]
    if not code:
        return 'other'
    if sum(bool(IMPORT.match(l)) for l in code) >= len(code) / 2:
        return 'imports'
    if sum(bool(TAG.search(l)) for l in code) >= len(code) / 3 or any(ERRVAR.match(l) for l in code):
        return 'declarations'
    if any(l.startswith(('func Test', 'func Fuzz', 'func Benchmark')) for l in code):
        return 'test heads'
    return 'other'


def main():
    groups = collections.defaultdict(list)
    for row in sys.stdin:
        m = ROW.match(row)
        if not m:
            continue
        kinds = set()
        for path, first, last in ((m[2], m[3], m[4]), (m[5], m[6], m[7])):
            with open(path, encoding='utf-8') as f:
                kinds.add(kind(f.read().split('\n')[int(first) - 1:int(last)]))
        # A pair is as thin as its thinner side.
        for k in ('imports', 'declarations', 'test heads', 'other'):
            if k in kinds:
                groups[k].append(row.rstrip())
                break
    for k, rows in sorted(groups.items(), key=lambda kv: -len(kv[1])):
        print(f'{k}: {len(rows)}')
        for r in rows:
            print('   ', r)


if __name__ == '__main__':
    main()
