# spin-lib.sh - sourced by the check-*model.sh scripts with the model's
# path as $1: a work directory, and run/complete to build pan and search.
set -eu
model=$(realpath "$1")
command -v spin >/dev/null 2>&1 || { echo "spin is not installed (apt-get install spin)"; exit 1; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"

# run NAME SPIN_FLAGS CC_FLAGS PAN_FLAGS: leaves pan's output in NAME.out
run() {
    rm -f pan pan.* ./*.trail
    spin -a $2 "$model" >"$1.spin" 2>&1 || { cat "$1.spin"; exit 1; }
    cc -O2 -w $3 -o pan pan.c
    ./pan $4 >"$1.out" 2>&1 || true
    grep -E "^(State-vector|pan: elapsed)|states, stored" "$1.out" | sed "s/^/$1: /"
}
complete() { ! grep -q "max search depth too small\|Search not completed" "$1.out"; }
