#!/bin/sh
# Per-file line and branch coverage of libsako/*.c from the .gcda files in OBJDIR
# (make coverage): gcov -b, one row per file, then the totals. Branch coverage is
# gcov's "taken at least once" (each outcome of each condition counted).
# usage: tests/coverage_table.sh OBJDIR
set -eu
obj="$1"
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$obj"
gcov -b -o . "$root"/libsako/*.c 2>/dev/null | awk '
/^File .*libsako\/.*\.c\047/ { f = $2; gsub(/\047/, "", f); sub(/.*\//, "", f); next }
/^File / { f = ""; next }
function pct(s) { sub(/^[^:]*:/, "", s); sub(/%.*/, "", s); return s + 0 }
function count(s) { sub(/.* of /, "", s); return s + 0 }
f != "" && /^Lines executed:/ { lines[f] = pct($0); nl[f] = count($0) }
f != "" && /^Taken at least once:/ { taken[f] = pct($0); nb[f] = count($0); order[++n] = f; f = "" }
f != "" && /^No branches/ { taken[f] = 100; nb[f] = 0; order[++n] = f; f = "" }
END {
    printf "%-20s %8s %8s %10s %8s\n", "file", "lines%", "lines", "branches%", "branches"
    for (i = 1; i <= n; i++) {
        g = order[i]
        printf "%-20s %8.1f %8d %10.1f %8d%s\n", g, lines[g], nl[g], taken[g], nb[g], (nb[g] && taken[g] < 90) ? "  <90" : ""
        tl += lines[g] * nl[g] / 100; al += nl[g]; tb += taken[g] * nb[g] / 100; ab += nb[g]
    }
    printf "%-20s %8.1f %8d %10.1f %8d\n", "total", 100 * tl / al, al, 100 * tb / ab, ab
}'
