#!/usr/bin/env python3
"""What a fresh page costs on this machine, beside the gateway's own figures.

Writes 10 MB batches of 100 KB pieces with writev + fdatasync, as the blob log does, once into
new files (every page of the page cache is new, as for a gateway whose segments only grow) and
once rewriting a file whose pages were just freed, and touches fresh anonymous memory. Prints
CPU per byte for each: on a virtual machine the first touch of a page can cost far more than
copying into it.

    python3 benches/fresh-pages.py [DIR]
"""
import mmap
import os
import sys
import tempfile
import time

PIECES, PIECE = 100, 100_000
ROUNDS = 30


def batches(path, truncate):
    flags = os.O_CREAT | os.O_WRONLY | os.O_APPEND | (os.O_TRUNC if truncate else 0)
    pieces = [os.urandom(PIECE) for _ in range(PIECES)]
    fd = os.open(path, flags, 0o600)
    cpu = time.process_time()
    for _ in range(ROUNDS):
        os.writev(fd, pieces)
        os.fdatasync(fd)
    cpu = time.process_time() - cpu
    os.close(fd)
    return ROUNDS * PIECES * PIECE / 1e6 / max(cpu, 1e-9)


def main():
    with tempfile.TemporaryDirectory(dir=sys.argv[1] if len(sys.argv) > 1 else None) as d:
        for i in range(3):
            fresh = batches(os.path.join(d, f"new-{i}.dat"), truncate=False)
            print(f"writev + fdatasync into a new file:          {fresh:7.0f} MB/s a core")
        reused = os.path.join(d, "reused.dat")
        batches(reused, truncate=True)
        for _ in range(3):
            again = batches(reused, truncate=True)
            print(f"writev + fdatasync over just-freed pages:   {again:7.0f} MB/s a core")
    for _ in range(3):
        m = mmap.mmap(-1, 1 << 30)
        cpu = time.process_time()
        for off in range(0, 1 << 30, mmap.PAGESIZE):
            m[off] = 1
        cpu = time.process_time() - cpu
        m.close()
        print(f"first touch of 1 GiB anonymous memory:       {cpu:7.2f} s CPU "
              f"({cpu / ((1 << 30) // mmap.PAGESIZE) * 1e6:.1f} µs a page)")


if __name__ == "__main__":
    main()
