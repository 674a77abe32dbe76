#!/usr/bin/env python3
"""What a fresh page costs on this machine, beside the gateway's own figures.

Writes 10 MB batches of 100 KB pieces with writev + fdatasync, as the blob log does, once into
new files (every page of the page cache is new, as for a gateway whose segments only grow) and
once rewriting a file whose pages were just freed, and touches fresh anonymous memory. Then
appends to one growing file as the blob log does, dropping the synced pages either at once or
only once they are a window behind the end, and in 10 MB or 100 MB batches. Prints CPU per byte
for each: on a virtual machine the first touch of a page can cost far more than copying into it.

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


def growing(path, pieces, keep, total=1_500_000_000):
    """Appends batches of `pieces` 100 KB pieces, each synced, and drops the cached pages that lie
    more than `keep` bytes behind the end (as `BlobLog::append` does with its window)."""
    fd = os.open(path, os.O_CREAT | os.O_WRONLY | os.O_TRUNC, 0o600)
    batch = [os.urandom(PIECE) for _ in range(pieces)]
    written = dropped = 0
    cpu = time.process_time()
    while written < total:
        os.writev(fd, batch)
        os.fdatasync(fd)
        written += pieces * PIECE
        keep_from = max(0, written - keep)
        if keep_from > dropped:
            os.posix_fadvise(fd, dropped, keep_from - dropped, os.POSIX_FADV_DONTNEED)
            dropped = keep_from
    cpu = time.process_time() - cpu
    os.close(fd)
    os.unlink(path)
    return written / 1e6 / max(cpu, 1e-9)


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
        grow = os.path.join(d, "growing.dat")
        for pieces, keep, what in [
            (PIECES, 0, "10 MB batches, dropped once synced"),
            (PIECES, 64 << 20, "10 MB batches, 64 MiB window"),
            (10 * PIECES, 0, "100 MB batches, dropped once synced"),
        ]:
            rate = growing(grow, pieces, keep)
            print(f"growing file, {what + ':':37s} {rate:7.0f} MB/s a core")
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
