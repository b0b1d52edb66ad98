"""The caller's subordinate id ranges, read the way the runtime reads them (docs/userns.md),
for the tests that check id maps."""
import os
import pwd


def caller_ranges(path):
    """The caller's ranges in a subuid(5)/subgid(5) file, in file order, as (start, count):
    lines naming the caller by name or uid, malformed lines and empty ranges skipped."""
    uid = os.getuid()
    try:
        name = pwd.getpwuid(uid).pw_name
    except KeyError:
        name = None
    ranges = []
    try:
        with open(path) as f:
            for line in f:
                fields = line.strip().split(":")
                if len(fields) != 3 or not fields[1].isdigit() or not fields[2].isdigit():
                    continue
                if fields[0] in (name, str(uid)) and int(fields[2]) > 0:
                    ranges.append((int(fields[1]), int(fields[2])))
    except FileNotFoundError:
        pass
    return ranges


def usable_ranges(path):
    """The ranges the map uses: a range overlapping the caller's own id or an earlier range
    is skipped, as the kernel refuses overlapping maps."""
    own = os.getuid() if path.endswith("subuid") else os.getgid()
    ranges = []
    for start, count in caller_ranges(path):
        if start <= own < start + count:
            continue
        if any(start < s + c and s < start + count for s, c in ranges):
            continue
        ranges.append((start, count))
    return ranges
