"""
workload.py MNT LOG SEED: a random file workload that runs until killed.

Files named keep-* are written once, fsynced, and then recorded in LOG (itself fsynced)
with their size and digest; they are never changed again, so after a crash every file in
LOG must read back exactly.  Everything else (scratch files and directories) is created,
overwritten, truncated, renamed and removed at random to keep the metadata busy.
"""
import hashlib
import os
import random
import sys


def main():
    mnt, log_path, seed = sys.argv[1], sys.argv[2], int(sys.argv[3])
    rng = random.Random(seed)
    log = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    scratch = []
    os.makedirs(f"{mnt}/s", exist_ok=True)
    n = 0
    while True:
        n += 1
        op = rng.random()
        if op < 0.3:
            name = f"keep-{seed}-{n}"
            data = rng.randbytes(rng.choice([0, 1, 4095, 4096, 5000, 65536, 300000, 1 << 20]))
            fd = os.open(f"{mnt}/{name}", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            os.write(fd, data)
            os.fsync(fd)
            os.close(fd)
            line = f"{name} {len(data)} {hashlib.sha256(data).hexdigest()}\n"
            os.write(log, line.encode())
            os.fsync(log)
        elif op < 0.55 or not scratch:
            name = f"s/x{n}"
            with open(f"{mnt}/{name}", "wb") as f:
                f.write(rng.randbytes(rng.randrange(0, 200000)))
            scratch.append(name)
        elif op < 0.65:
            name = rng.choice(scratch)
            with open(f"{mnt}/{name}", "r+b") as f:
                f.seek(rng.randrange(0, 300000))
                f.write(rng.randbytes(rng.randrange(1, 70000)))
        elif op < 0.72:
            os.truncate(f"{mnt}/{rng.choice(scratch)}", rng.randrange(0, 100000))
        elif op < 0.8:
            old = rng.choice(scratch)
            new = f"s/r{n}"
            os.rename(f"{mnt}/{old}", f"{mnt}/{new}")
            scratch[scratch.index(old)] = new
        elif op < 0.88:
            name = rng.choice(scratch)
            os.unlink(f"{mnt}/{name}")
            scratch.remove(name)
        elif op < 0.94:
            d = f"s/d{n}"
            os.mkdir(f"{mnt}/{d}")
            with open(f"{mnt}/{d}/f", "w") as f:
                f.write("x" * rng.randrange(0, 9000))
            os.setxattr(f"{mnt}/{d}/f", "user.n", str(n).encode())
        else:
            os.setxattr(f"{mnt}/{rng.choice(scratch)}", f"user.a{n % 7}", rng.randbytes(100))


if __name__ == "__main__":
    main()
