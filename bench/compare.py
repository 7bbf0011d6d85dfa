"""
Compare the benchmarks of two source trees, fairly, in the same minutes.

Usage: ``python bench/compare.py OLD_TREE NEW_TREE [--pairs 5]``

Method:

- Each tree is measured with its *own* ``bench/local_post.py`` and
  ``bench/network.py`` (or, with ``--bench-from TREE``, both with that
  tree's, so the method is the same; the scripts take the tree to import
  from ``BENCH_TREE``), each run a separate subprocess (its own interpreter,
  its own reactor) with ``PYTHONPATH=<tree>`` and ``cwd=<tree>``; before each
  run a one-line probe in the same environment checks that ``lightspeed`` is
  imported from that tree (the venv may hold an installed copy).
- Runs come in *pairs*: each benchmark is run against OLD and NEW back to
  back, and the order within a pair alternates (old-new, new-old, ...), so a
  drift in machine speed or load hits both trees alike.
- Every ratio comes from one pair only (NEW/OLD for rates, OLD/NEW for
  latencies, so >1 always means NEW is better); a figure is never set against
  one from another minute.  The summary is min/median/max of those ratios.
- Each benchmark's own lightspeed-vs-baseline ratio (same run, same process)
  is kept too, per tree.
- A NEW run that fails (traceback, import error, no figures) is retried after
  60 s, up to 5 times: the NEW tree may be mid-edit.  A fingerprint of each
  tree's sources is printed per run, so an edit between runs is visible.
- Bytecode goes to a temporary PYTHONPYCACHEPREFIX; neither tree is written.
"""

import argparse
import hashlib
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time

ENVS = {"local_post": {"BENCH_N": "100000"}, "network": {"BENCH_N": "50000", "BENCH_RTT": "1000"}}
NUM = r"([\d,]+(?:\.\d+)?)"
UNIT = r"\s*(us|µs|ms|s)\b"
SCALE = {"us": 1.0, "µs": 1.0, "ms": 1e3, "s": 1e6}
# metric -> (bench, regex, how to get (lightspeed, baseline) from the groups, higher_is_better)
PATTERNS = [
    ("local_alias", "local_post", r"local_post\s*\[[^\]]*alias[^\]]*\]:\s*" + NUM + r".*?baseline\s*" + NUM, True),
    ("local_poe", "local_post", r"local_post\s*\[[^\]]*(?:poe|specifier)[^\]]*\]:\s*" + NUM + r".*?baseline\s*"
     + NUM, True),
    ("one_way", "network", r"one_way:\s*lightspeed\s*" + NUM + r".*?frames\s*" + NUM, True),
    ("rtt_median", "network", r"request_rtt:\s*lightspeed\s*median\s*" + NUM + UNIT + r".*?raw\s*median\s*"
     + NUM + UNIT, False),
    ("rtt_p99", "network", r"request_rtt:.*?lightspeed.*?p99\s*" + NUM + UNIT + r".*?raw.*?p99\s*" + NUM + UNIT,
     False),
    ("chain3", "network", r"chain3:\s*lightspeed\s*via\s*a\s*relay\s*" + NUM + r".*?direct\s*" + NUM, True),
]
BASE_NAME = {"local_alias": "ls/deque", "local_poe": "ls/deque", "one_way": "ls/raw", "rtt_median": "ls/raw",
             "rtt_p99": "ls/raw", "chain3": "chain/direct"}


def num(text):
    return float(text.replace(",", ""))


def parse(bench, out):
    """
    The figures of one run: metric -> (lightspeed figure, baseline figure); latencies in us.
    """
    found = {}
    for metric, b, pattern, _ in PATTERNS:
        if b != bench:
            continue
        m = re.search(pattern, out, re.IGNORECASE)
        if not m:
            continue
        g = m.groups()
        if len(g) == 4:  # value, unit, value, unit
            found[metric] = (num(g[0]) * SCALE[g[1]], num(g[2]) * SCALE[g[3]])
        else:
            found[metric] = (num(g[0]), num(g[1]))
    return found


def fingerprint(tree):
    h = hashlib.sha1()
    for sub in ("lightspeed", "bench"):
        for root, dirs, files in sorted(os.walk(os.path.join(tree, sub))):
            dirs[:] = sorted(d for d in dirs if d != "__pycache__")
            for f in sorted(files):
                if f.endswith(".py"):
                    with open(os.path.join(root, f), "rb") as fh:
                        h.update(f.encode() + fh.read())
    return h.hexdigest()[:10]


#: The tree whose bench/ scripts measure both trees (``--bench-from``), or
#: None: each tree its own.
BENCH_FROM = None


def run_once(tree, bench, cache, timeout=300):
    env = dict(os.environ, PYTHONPATH=tree, PYTHONPYCACHEPREFIX=cache, BENCH_TREE=tree, **ENVS[bench])
    probe = subprocess.run([sys.executable, "-c", "import lightspeed; print(lightspeed.__file__)"], cwd=tree,
                           env=env, capture_output=True, text=True, timeout=60)
    origin = probe.stdout.strip()
    if probe.returncode or not origin.startswith(os.path.join(tree, "lightspeed") + os.sep):
        return None, f"probe: lightspeed from {origin!r}: {probe.stderr.strip()[-300:]}"
    # A session of its own, so that every child it leaves behind can be killed by group.
    proc = subprocess.Popen([sys.executable, os.path.join(BENCH_FROM or tree, "bench", bench + ".py")], cwd=tree, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        out, err = "", f"timed out after {timeout} s"
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait()
    found = parse(bench, out)
    want = {m for m, b, _, _ in PATTERNS if b == bench}
    if proc.returncode or "Traceback" in err or set(found) != want:
        return None, f"rc={proc.returncode} missing={sorted(want - set(found))} stderr: {err.strip()[-400:]}"
    return found, None


def run(label, tree, bench, cache, retries):
    for attempt in range(retries + 1):
        fp, load = fingerprint(tree), os.getloadavg()[0]
        found, error = run_once(tree, bench, cache)
        if found is not None:
            figs = "; ".join(f"{m} {a:,.0f} (base {b:,.0f}){' us' if 'rtt' in m else '/s'}" for m, (a, b) in found.items())
            print(f"  {label} {bench:<10} src={fp} load={load:.2f}: {figs}", flush=True)
            return found
        print(f"  {label} {bench} FAILED (attempt {attempt + 1}, src={fp}): {error}", flush=True)
        if attempt < retries:
            time.sleep(60)
    raise SystemExit(f"{label} {bench}: gave up after {retries + 1} attempts")


def mmm(values):
    return f"{min(values):8.3f} {statistics.median(values):8.3f} {max(values):8.3f}"


def main():
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument("old")
    parser.add_argument("new")
    parser.add_argument("--pairs", type=int, default=5)
    parser.add_argument("--bench-from", metavar="TREE",
                        help="measure both trees with this tree's bench/ scripts (the same method for both)")
    args = parser.parse_args()
    global BENCH_FROM
    BENCH_FROM = os.path.abspath(args.bench_from) if args.bench_from else None
    trees = {"OLD": os.path.abspath(args.old), "NEW": os.path.abspath(args.new)}
    cache = tempfile.mkdtemp(prefix="lightspeed-bench-pyc-")
    load_start = os.getloadavg()
    started = time.time()
    print(f"OLD={trees['OLD']}  NEW={trees['NEW']}  pairs={args.pairs}  sizes={ENVS}")
    print(f"load at start: {' '.join(f'{x:.2f}' for x in load_start)}")
    ratios = {m: [] for m, _, _, _ in PATTERNS}          # per pair, >1 = NEW better
    own = {(t, m): [] for t in trees for m in ratios}     # each run's lightspeed/baseline
    for pair in range(args.pairs):
        order = ["OLD", "NEW"] if pair % 2 == 0 else ["NEW", "OLD"]
        print(f"pair {pair + 1}: order {'-'.join(order)}", flush=True)
        for bench in ENVS:
            results = {t: run(t, trees[t], bench, cache, retries=5) for t in order}
            for metric, _, _, higher in PATTERNS:
                if metric not in results["OLD"]:
                    continue
                old, new = results["OLD"][metric][0], results["NEW"][metric][0]
                ratios[metric].append(new / old if higher else old / new)
                for t in trees:
                    a, b = results[t][metric]
                    own[(t, metric)].append(a / b)
        print("  ratios: " + "  ".join(f"{m} {v[-1]:.3f}" for m, v in ratios.items()), flush=True)
    load_end = os.getloadavg()
    print()
    print("NEW vs OLD, per pair (rates NEW/OLD, latencies OLD/NEW; >1 = NEW better)")
    print(f"{'metric':<12} {'per pair':<{8 * args.pairs}} {'min':>8} {'median':>8} {'max':>8}")
    for metric, values in ratios.items():
        print(f"{metric:<12} {''.join(f'{v:8.3f}' for v in values):<{8 * args.pairs}} {mmm(values)}")
    print()
    print("each benchmark's own lightspeed/baseline ratio (same run; for rtt lower is better)")
    print(f"{'metric':<12} {'ratio':<13} {'tree':<4} {'min':>8} {'median':>8} {'max':>8}")
    for metric in ratios:
        for t in trees:
            print(f"{metric:<12} {BASE_NAME[metric]:<13} {t:<4} {mmm(own[(t, metric)])}")
    print()
    print(f"load at start: {' '.join(f'{x:.2f}' for x in load_start)}; "
          f"at end: {' '.join(f'{x:.2f}' for x in load_end)}; elapsed {time.time() - started:.0f} s")


if __name__ == "__main__":
    main()
