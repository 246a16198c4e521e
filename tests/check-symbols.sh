#!/bin/sh
# check-symbols.sh LIB HEADER - the shared library exports exactly the
# functions the public header declares with CB_EXPORT, nothing else.
set -eu
lib=$1 header=$2
exported=$(nm -D --defined-only "$lib" | awk '$2 == "T" { sub(/@.*/, "", $3); print $3 }' | sort)
declared=$(grep -o '^CB_EXPORT [^(]*(' "$header" | sed 's/.*[ *]\([a-z_]*\)($/\1/' | sort)
if [ "$exported" != "$declared" ]; then
    echo "exported and declared symbols differ (< exported, > declared):"
    printf '%s\n' "$exported" > /tmp/cb-exported.$$
    printf '%s\n' "$declared" | diff /tmp/cb-exported.$$ - || true
    rm -f /tmp/cb-exported.$$
    exit 1
fi
echo "$(printf '%s\n' "$exported" | wc -l) symbols, all declared"
