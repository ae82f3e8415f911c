# Sourced by the CLI contract tests (test_cli.sh, test_cli_gpt.sh), not a test itself: the
# temporary directory, the fails counter, the expect and ok checks, and the fixtures both scripts
# use. usage (from a test): source "$(dirname "$0")/cli_common.sh" with $1 = path/to/octet
octet=$(realpath "$1") # absolute: some checks run in other directories
tmp=$(mktemp -d "${TMPDIR:-/tmp}/octet-cli.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
fails=0

# expect CODE WORD CMD...: runs CMD, checks its exit status, that stderr is one line, and that
# it contains WORD (skipped when empty).
expect() {
    local code=$1 word=$2
    shift 2
    "$@" >"$tmp/out" 2>"$tmp/err"
    local rc=$? lines
    lines=$(wc -l <"$tmp/err")
    if [ "$rc" != "$code" ] || [ "$lines" != 1 ] || { [ -n "$word" ] && ! grep -qF -- "$word" "$tmp/err"; }; then
        echo "FAIL: $* -> exit $rc (want $code), $lines stderr lines (want 1, containing '$word'):"
        cat "$tmp/err"
        fails=$((fails + 1))
    fi
}

# ok NAME WORD CMD...: CMD must succeed and print WORD on stdout.
ok() {
    local name=$1 word=$2
    shift 2
    if ! "$@" >"$tmp/out" 2>"$tmp/err" || ! grep -qF -- "$word" "$tmp/out"; then
        echo "FAIL: $name: $*"; cat "$tmp/err"; fails=$((fails + 1))
    fi
}

# set_meta SRC DST KEY VALUE: DST is SRC with the metadata string KEY set to VALUE, padded with
# spaces to the old value's length (the header keeps its size; the crc32 covers the data only)
set_meta() {
    local old new
    old=$(LC_ALL=C grep -ao "\"$3\":\"[^\"]*\"" "$1" | head -1)
    new="\"$3\":\"$4\""
    if [ -z "$old" ] || [ ${#new} -gt ${#old} ]; then
        echo "FAIL: set_meta: no room for $3 = '$4' in $1 ($old)"; fails=$((fails + 1)); return
    fi
    LC_ALL=C sed "s|$old|$(printf "%-${#old}s" "$new")|" "$1" >"$2"
}

# a tiny IDX data set (4 images of 2x2 pixels) written byte by byte, and a tiny MLP trained on
# it ($tmp/tiny.safetensors); test_cli.sh checks that run from its output and $tiny_rc
mkdir -p "$tmp/tiny"
printf '\x00\x00\x08\x03\x00\x00\x00\x04\x00\x00\x00\x02\x00\x00\x00\x02' >"$tmp/tiny/train-images-idx3-ubyte"
printf '\x00\x10\x20\x30\x40\x50\x60\x70\x80\x90\xa0\xb0\xc0\xd0\xe0\xf0' >>"$tmp/tiny/train-images-idx3-ubyte"
printf '\x00\x00\x08\x01\x00\x00\x00\x04\x00\x01\x02\x03' >"$tmp/tiny/train-labels-idx1-ubyte"
cp "$tmp/tiny/train-images-idx3-ubyte" "$tmp/tiny/t10k-images-idx3-ubyte"
cp "$tmp/tiny/train-labels-idx1-ubyte" "$tmp/tiny/t10k-labels-idx1-ubyte"
"$octet" train mlp --data "$tmp/tiny" --epochs 2 --batch 2 --hidden 8 \
    --save "$tmp/tiny.safetensors" >"$tmp/tiny-train.out" 2>"$tmp/tiny-train.err"
tiny_rc=$?
# a tiny corpus and the flags of a tiny GPT trained on it
for i in $(seq 60); do printf 'and the light was good; and %d days passed.\n' "$i"; done >"$tmp/tiny.txt"
gpt_flags=(--text "$tmp/tiny.txt" --layers 1 --heads 2 --width 16 --context 16 --mlp 32 --batch 2
    --steps 6 --eval-every 0 --eval-batches 1)
