"""Mutation score per package, from the results `mutmut run` leaves in mutants/.

mutmut 3 writes one JSON file per mutated source file, mutants/<path>.meta, whose
"exit_code_by_key" maps each mutant's name to the exit code of its test run (null: not
run yet). This prints a Markdown table with a row per package (a subpackage such as
fedland/quant, or a module directly in the top package such as fedland/metrics.py) and a
total. The score is killed / (killed + survived); timeouts, mutants no test reaches and
the rest (not run yet, suspicious, segfault, ...) are counted apart and left out of it.

    python benchmarks/mutation_score.py [--mutants mutants] [--survivors]
"""

from __future__ import annotations

import argparse
import json
from collections import Counter, defaultdict
from pathlib import Path

# Exit code -> status, as in mutmut.stats.status_by_exit_code (mutmut 3.8); other codes
# are "suspicious" there.
STATUS = {
    1: "killed",
    3: "killed",
    0: "survived",
    5: "no tests",
    33: "no tests",
    36: "timeout",
    -24: "timeout",
    24: "timeout",
    152: "timeout",
    255: "timeout",
}
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


def status_of(code: int | None) -> str:
    return STATUS.get(code, "other") if code is not None else "other"


def table(results: dict[str, dict[str, int | None]]) -> str:
    """The Markdown table: package | mutants | killed | ... | score %."""
    header = ["package", "mutants", *COLUMNS, "score %"]
    rows = [header, ["---"] + ["---:"] * (len(header) - 1)]
    total: Counter[str] = Counter()
    for package, codes in sorted(results.items()):
        counts = Counter(status_of(code) for code in codes.values())
        total += counts
        rows.append(_row(package, len(codes), counts))
    rows.append(_row("**total**", sum(len(c) for c in results.values()), total))
    return "\n".join("| " + " | ".join(row) + " |" for row in rows)


def _row(name: str, mutants: int, counts: Counter[str]) -> list[str]:
    tested = counts["killed"] + counts["survived"]
    score = f"{100 * counts['killed'] / tested:.1f}" if tested else "-"
    return [name, str(mutants), *(str(counts[c]) for c in COLUMNS), score]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mutants", type=Path, default=Path("mutants"), help="mutmut's folder")
    parser.add_argument("--survivors", action="store_true", help="also list surviving mutants")
    args = parser.parse_args()
    results = read_results(args.mutants)
    if not results:
        raise SystemExit(f"no mutmut results under {args.mutants}/: run `make mutate` first")
    print(table(results))
    if args.survivors:
        print()
        for codes in results.values():
            for name, code in sorted(codes.items()):
                if status_of(code) == "survived":
                    print(f"survived: {name}  (mutmut show {name})")


if __name__ == "__main__":
    main()
