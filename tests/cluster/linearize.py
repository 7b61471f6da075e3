"""
linearize.py: is a concurrent history explainable by one sequential order?

A history is a list of operations, each with the process that ran it, its invocation and
response times (CLOCK_MONOTONIC, one clock for every process of the host), what it asked and
what it saw.  It is linearizable if the operations can be put in one order that respects
real time (an operation that returned before another was invoked comes first) and in which
a sequential model, applied in that order, returns what every operation saw.

The search is the classic one (Wing and Gong, with the memoization Lowe added): take next
any pending operation that was invoked before every other pending one returned, apply it to
the model, and backtrack when the model disagrees; a set of done operations with a model
state already known to fail is not explored twice.

Models are objects with `initial()` returning a hashable state and `apply(state, op)`
returning (new_state, expected_result), or a list of such alternatives when the operation may
legitimately have more than one outcome.
"""
import sys
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Op:
    proc: int
    start: float
    end: float
    name: str
    args: tuple
    result: Any
    index: int = field(default=-1)

    def __str__(self):
        return (f"p{self.proc} [{self.start:.6f} .. {self.end:.6f}] {self.name}{self.args} "
                f"-> {self.result!r}")


class NotLinearizable(Exception):
    pass


class _Any:
    """An expected value the model cannot predict (a time the system chose): matches all."""

    def __eq__(self, other):
        return True

    def __ne__(self, other):
        return False

    def __hash__(self):
        return 0

    def __repr__(self):
        return "ANY"


ANY = _Any()


def check(history, model, limit=2_000_000):
    """Return one linearization (a list of ops) or raise NotLinearizable with a report."""
    ops = sorted(history, key=lambda o: o.start)
    for i, o in enumerate(ops):
        o.index = i
    n = len(ops)
    sys.setrecursionlimit(max(10000, 4 * n + 100))
    failed = set()
    order = []
    best = []
    visits = [0]

    def candidates(done):
        # pending ops invoked before the earliest response among pending ops
        min_end = min(ops[i].end for i in range(n) if not done >> i & 1)
        for i in range(n):
            if not done >> i & 1:
                if ops[i].start > min_end:
                    break
                yield i

    def search(done, state):
        if done == (1 << n) - 1:
            return True
        key = (done, repr(state))  # ANY must not compare equal to a real value here
        if key in failed:
            return False
        visits[0] += 1
        if visits[0] > limit:
            raise NotLinearizable(f"search gave up after {limit} steps")
        for i in candidates(done):
            outcomes = model.apply(state, ops[i])
            if not isinstance(outcomes, list):
                outcomes = [outcomes]
            for new_state, expected in outcomes:
                if expected != ops[i].result:
                    continue
                order.append(ops[i])
                if len(order) > len(best):
                    best[:] = order
                if search(done | 1 << i, new_state):
                    return True
                order.pop()
        failed.add(key)
        return False

    if search(0, model.initial()):
        return list(order)
    done = {o.index for o in best}
    stuck = [o for o in ops if o.index not in done]
    lines = ["history is not linearizable", "longest explainable prefix ends with:"]
    lines += [f"  {o}" for o in best[-10:]]
    lines.append("operations that could not follow it (earliest first):")
    lines += [f"  {o}" for o in stuck[:15]]
    raise NotLinearizable("\n".join(lines))


class NamespaceModel:
    """
    Names in one directory, each naming an inode whose contents never change once it has a
    name (they are written under a private name first, and every put writes different
    contents, so contents identify the inode).  State: sorted (name, contents) pairs.
    """

    def initial(self):
        return ()

    def apply(self, state, op):
        names = dict(state)
        a = op.args
        if op.name == "put":  # rename(private, a[0]) of a new inode with contents a[1]
            names[a[0]] = a[1]
            res = 0
        elif op.name == "get":  # open + read: the contents, or ENOENT
            res = names.get(a[0], "ENOENT")
        elif op.name == "del":
            res = 0 if names.pop(a[0], None) else "ENOENT"
        elif op.name == "mv":
            if a[0] not in names:
                res = "ENOENT"
                if a[1] in names:
                    # The kernel looks both names up itself and does nothing, successfully,
                    # when they name one inode: a stale name that another mount has just
                    # renamed to the target looks like that (the VFS decides before the
                    # filesystem is asked, so no cluster lock orders it)
                    return [(state, "ENOENT"), (state, 0)]
            else:
                # two names of one inode (same contents): rename does nothing (POSIX)
                if names.get(a[1]) != names[a[0]]:
                    names[a[1]] = names.pop(a[0])
                res = 0
        elif op.name == "link":
            if a[0] not in names:
                res = "ENOENT"
            elif a[1] in names:
                res = "EEXIST"
            else:
                # link(2) looks its source up before it locks anything: if a rename or
                # unlink takes that inode's last name in between, it fails with ENOENT,
                # as on any Linux filesystem
                before = tuple(sorted(names.items()))
                names[a[1]] = names[a[0]]
                return [(tuple(sorted(names.items())), 0), (before, "ENOENT")]
        elif op.name == "ls":
            res = tuple(sorted(names))
        else:
            raise ValueError(op.name)
        return tuple(sorted(names.items())), res


class AttrModel:
    """Files that always exist; their mode bits, size, mtime and one xattr change."""

    def __init__(self, names):
        self.names = names

    def initial(self):
        return tuple((n, (0o644, 0, 0, None)) for n in self.names)

    # results compare with == against what the model expects; ANY stands in for a time

    def apply(self, state, op):
        files = dict(state)
        mode, size, mtime, xattr = files[op.args[0]]
        res = 0
        if op.name == "chmod":
            mode = op.args[1]
        elif op.name == "truncate":
            size = op.args[1]
            mtime = ANY  # now, as the filesystem saw it
        elif op.name == "utime":
            mtime = op.args[1]
        elif op.name == "setx":
            xattr = op.args[1]
        elif op.name == "rmx":
            res = 0 if xattr is not None else "ENODATA"
            xattr = None
        elif op.name == "stat":
            res = (mode, size, mtime)
        elif op.name == "getx":
            res = xattr if xattr is not None else "ENODATA"
        else:
            raise ValueError(op.name)
        files[op.args[0]] = (mode, size, mtime, xattr)
        return tuple(sorted(files.items())), res
