"""Mutation score per package, from the results `mutmut run` leaves in mutants/.

mutmut 3 writes one JSON file per mutated source file, mutants/<path>.meta, whose
"exit_code_by_key" maps each mutant's name to the exit code of its test run (null: not
run yet). This prints a Markdown table with a row per package (a subpackage such as
fedland/quant, or a module directly in the top package such as fedland/metrics.py) and a
total. The score is killed / (killed + survived); timeouts, mutants no test reaches and
the rest (not run yet, suspicious, segfault, ...) are counted apart and left out of it.

    python benchmarks/mutation_score.py [--mutants mutants] [--survivors] [--sample N]

A full run takes hours on two cores; `--sample N` prints the names of N mutants per package
drawn with a fixed seed, for `make mutate MUTANTS="..."`, and `--only-sample N` scores just
those, an estimate of each package's score with its 95% margin.
"""

from __future__ import annotations

import argparse
import json
import math
import random
from collections import Counter, defaultdict
from pathlib import Path

from mutmut.stats import status_by_exit_code

COLUMNS = ["killed", "survived", "timeout", "no tests", "other"]


def package_of(source: Path) -> str:
    """fedland/quant/conv.py -> fedland/quant; fedland/metrics.py -> fedland/metrics.py."""
    parts = source.parts
    return "/".join(parts[:2]) if len(parts) > 2 else source.as_posix()


def read_results(root: Path) -> dict[str, dict[str, int | None]]:
    """Exit code by mutant name, by package, of every mutants/**/*.py.meta under root."""
    results: dict[str, dict[str, int | None]] = defaultdict(dict)
    for meta in sorted(root.rglob("*.py.meta")):
        source = meta.relative_to(root).with_suffix("")
        codes = json.loads(meta.read_text())["exit_code_by_key"]
        results[package_of(source)].update(codes)
    return results


def sample(results: dict[str, dict[str, int | None]], size: int, seed: int = 0):
    """The same `size` mutants of each package every time (all of a smaller package)."""
    drawn: dict[str, dict[str, int | None]] = {}
    for package, codes in sorted(results.items()):
        names = sorted(codes)
        chosen = random.Random(f"{seed}/{package}").sample(names, min(size, len(names)))
        drawn[package] = {name: codes[name] for name in sorted(chosen)}
    return drawn


def status_of(code: int | None) -> str:
    """mutmut's own reading of an exit code, with what the table has no column for as other."""
    status = status_by_exit_code[code]
    return status if status in COLUMNS else "other"


def table(results: dict[str, dict[str, int | None]], margins: bool = False) -> str:
    """The Markdown table: package | mutants | killed | ... | score % (± the 95% margin of a
    sample's estimate, with `margins`)."""
    header = ["package", "mutants", *COLUMNS, "score %"]
    rows = [header, ["---"] + ["---:"] * (len(header) - 1)]
    total: Counter[str] = Counter()
    for package, codes in sorted(results.items()):
        counts = Counter(status_of(code) for code in codes.values())
        total += counts
        rows.append(_row(package, len(codes), counts, margins))
    rows.append(_row("**total**", sum(len(c) for c in results.values()), total, margins))
    return "\n".join("| " + " | ".join(row) + " |" for row in rows)


def _row(name: str, mutants: int, counts: Counter[str], margins: bool) -> list[str]:
    tested = counts["killed"] + counts["survived"]
    if not tested:
        return [name, str(mutants), *(str(counts[c]) for c in COLUMNS), "-"]
    rate = counts["killed"] / tested
    margin = 1.96 * math.sqrt(rate * (1 - rate) / tested)  # binomial, for a sample
    score = f"{100 * rate:.1f}" + (f" ± {100 * margin:.1f}" if margins else "")
    return [name, str(mutants), *(str(counts[c]) for c in COLUMNS), score]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mutants", type=Path, default=Path("mutants"), help="mutmut's folder")
    parser.add_argument("--survivors", action="store_true", help="also list surviving mutants")
    parser.add_argument("--sample", type=int, help="print N mutant names per package")
    parser.add_argument("--only-sample", type=int, help="score only the --sample N mutants")
    args = parser.parse_args()
    results = read_results(args.mutants)
    if not results:
        raise SystemExit(
            f"no mutants under {args.mutants}/: `make mutate` generates them first "
            "(they exist once it prints 'Running stats')"
        )
    if args.sample:
        print(" ".join(name for codes in sample(results, args.sample).values() for name in codes))
        return
    if args.only_sample:
        results = sample(results, args.only_sample)
    print(table(results, margins=bool(args.only_sample)))
    if args.survivors:
        print()
        for codes in results.values():
            for name, code in sorted(codes.items()):
                if status_of(code) == "survived":
                    print(f"survived: {name}  (mutmut show {name})")


if __name__ == "__main__":
    main()
