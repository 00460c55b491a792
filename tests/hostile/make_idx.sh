#!/bin/sh
# Writes four small valid Fashion-MNIST IDX files (4 train, 2 test images of 28x28) into folder $1,
# gzip-compressed unless $2 is "plain". The hostile cases then break one of them.
set -e
mkdir -p "$1"
cd "$1"
images() { printf '\000\000\010\003\000\000\000\'"$1"'\000\000\000\034\000\000\000\034'; head -c $(($2 * 784)) /dev/zero | tr '\000' '\177'; }
labels() { printf '\000\000\010\001\000\000\000\'"$1"; printf '\001\002\003\004' | head -c "$2"; }
images 004 4 > train-images-idx3-ubyte
labels 004 4 > train-labels-idx1-ubyte
images 002 2 > t10k-images-idx3-ubyte
labels 002 2 > t10k-labels-idx1-ubyte
[ "$2" = plain ] || gzip -f -n ./*-ubyte
