#!/usr/bin/python3
"""Race the acceld engine against ONNX Runtime on the benchmark models, interleaved.

usage: bench/engine_vs_ort.py [--quick] [--build DIR] [--peers DIR] [--models a,b]
                              [--batches 1,8,32] [--threads 2] [--rounds 5] [--min-time 1.5]
                              [--min-iters 5] [--warmup 3] [--json FILE]

For every model x batch it runs, several rounds, ours then ORT (the order flips each round),
each in a process of its own with the same thread count, so that machine-load drift hits both
sides alike and each side's peak RSS is that model x batch's alone. Peak RSS is the process's
ru_maxrss from wait4() for both sides (ORT's includes node.js itself). Prints a markdown table:
medians over rounds of samples/s and p50 latency, the median over rounds of the per-round
ratio ours/ORT, peak RSS (max over rounds) and its ratio, parity.
Exit status 1 when a run fails or our output is off the reference.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
TOP = os.path.dirname(HERE)


def find_bench(build):
    cands = [build] if build else []
    cands += [os.getcwd(), TOP, os.path.join(TOP, "build")]
    cands += sorted(os.path.join("/tmp", d) for d in os.listdir("/tmp") if d.startswith("b-"))
    for c in cands:
        p = os.path.join(c, "bench", "engine-bench")
        if c and os.access(p, os.X_OK):
            return p
    sys.exit("engine_vs_ort: bench/engine-bench not found; build it and pass --build DIR")


def run(cmd, env, timeout):
    """Run cmd; return (JSON lines of stdout, stderr tail, peak RSS KiB from wait4, exit code)."""
    with tempfile.TemporaryFile() as fo, tempfile.TemporaryFile() as fe:
        p = subprocess.Popen(cmd, stdout=fo, stderr=fe, env=env)
        killer = threading.Timer(timeout, p.kill)
        killer.start()
        _, status, ru = os.wait4(p.pid, 0)
        killer.cancel()
        p.returncode = os.waitstatus_to_exitcode(status)
        fo.seek(0)
        fe.seek(0)
        out, err = fo.read(), fe.read()
    lines = []
    for ln in out.decode(errors="replace").splitlines():
        ln = ln.strip()
        if ln.startswith("{"):
            try:
                lines.append(json.loads(ln))
            except ValueError:
                pass
    return lines, err.decode(errors="replace")[-2000:], ru.ru_maxrss, p.returncode


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="1 round, 0.5 s per point (development)")
    ap.add_argument("--build", help="build directory holding bench/engine-bench")
    ap.add_argument("--peers", default=os.path.join(TOP, ".bench-peers"))
    ap.add_argument("--shared", default=os.path.join(os.path.dirname(TOP), "shared", "bench"))
    ap.add_argument("--models", default="mlp,resnet18,resnet50,mobilenet_v2,transformer")
    ap.add_argument("--batches", default="1,8,32")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int)
    ap.add_argument("--min-time", type=float)
    ap.add_argument("--min-iters", type=int)
    ap.add_argument("--warmup", type=int)
    ap.add_argument("--rtol", type=float, default=1e-3)
    ap.add_argument("--atol", type=float, default=1e-4)
    ap.add_argument("--timeout", type=float, default=600, help="seconds per process")
    ap.add_argument("--json", help="append every raw result line to FILE")
    a = ap.parse_args()
    q = a.quick
    # Five shorter rounds rather than three long ones: the host's slow spells last seconds to
    # minutes, and the median of five back-to-back pairs is steadier than that of three.
    rounds = a.rounds or (1 if q else 5)
    min_time = a.min_time if a.min_time is not None else (0.5 if q else 1.5)
    min_iters = a.min_iters or (3 if q else 5)
    warmup = a.warmup if a.warmup is not None else (1 if q else 3)

    models_dir = os.path.join(a.peers, "models")
    if not (os.path.exists(os.path.join(models_dir, "manifest.json"))
            and os.path.exists(os.path.join(a.peers, "node_modules", "onnxruntime-node"))):
        subprocess.check_call([os.path.join(a.shared, "setup.sh"), a.peers])
    bench = find_bench(a.build)
    ort_js = os.path.join(a.shared, "bench_ort.js")
    env = dict(os.environ, NODE_PATH=os.path.join(a.peers, "node_modules"))
    env.pop("ACCELD_ENGINE_PROFILE", None)
    common = ["--min-time", str(min_time), "--min-iters", str(min_iters), "--warmup", str(warmup),
              "--threads", str(a.threads)]
    jf = open(a.json, "a") if a.json else None
    print(f"# engine-bench: {bench}; ORT: {ort_js}; threads {a.threads}, rounds {rounds}, "
          f"min-time {min_time}s, min-iters {min_iters}, warmup {warmup}", file=sys.stderr)

    rows, bad = [], 0
    for model in a.models.split(","):
        for batch in [int(b) for b in a.batches.split(",")]:
            res = {"acceld": [], "ort": []}
            errs = []
            for r in range(rounds):
                sides = ["acceld", "ort"] if r % 2 == 0 else ["ort", "acceld"]
                for side in sides:
                    sel = ["--models", model, "--batches", str(batch)]
                    if side == "acceld":
                        cmd = [bench, "--dir", models_dir, "--rtol", str(a.rtol), "--atol", str(a.atol)] + sel + common
                    else:
                        cmd = ["node", ort_js, "--dir", models_dir] + sel + common
                    t0 = time.time()
                    lines, err, rss, rc = run(cmd, env, a.timeout)
                    if rc != 0 or not lines:
                        errs.append(f"{side} round {r}: exit {rc}: {err.strip()[-400:]}")
                        continue
                    ln = lines[-1]
                    ln["peak_rss_kb_wait4"] = rss
                    ln["round"] = r
                    res[side].append(ln)
                    if jf:
                        jf.write(json.dumps(ln) + "\n")
                        jf.flush()
                    print(f"  {model} b{batch} r{r} {side}: {ln['samples_per_s']:.1f}/s p50 {ln['median_ms']:.2f} ms "
                          f"rss {rss / 1024:.0f} MiB ({time.time() - t0:.1f}s)", file=sys.stderr)
            for e in errs:
                print("  " + e, file=sys.stderr)
            rows.append((model, batch, res, errs))

    hdr = ("| model | batch | ours samples/s | ORT samples/s | ours/ORT | ours p50 ms | ORT p50 ms "
           "| ours peak RSS MiB | ORT peak RSS MiB | RSS ours/ORT | parity |")
    print(hdr)
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|")
    for model, batch, res, errs in rows:
        o, t = res["acceld"], res["ort"]
        def med(xs, k):
            return statistics.median(x[k] for x in xs) if xs else float("nan")
        def peak(xs):
            v = [x["peak_rss_kb_wait4"] for x in xs if x.get("peak_rss_kb_wait4")]
            return max(v) / 1024 if v else float("nan")
        os_, ts_ = med(o, "samples_per_s"), med(t, "samples_per_s")
        orss, trss = peak(o), peak(t)
        par_ok = bool(o) and all(x.get("parity_ok") for x in o) and len(o) == rounds
        ort_bad = [x for x in t if x["parity_max_abs"] > a.atol + a.rtol * x["ref_max_abs"]]
        par = "OK" if par_ok else "FAIL"
        if ort_bad:
            par += " (ORT off ref)"
        if not par_ok or errs or len(t) != rounds:
            bad += 1
        # Each round's pair ran back to back under the same machine load: the median of the
        # per-round ratios is steadier than the ratio of the medians when the load drifts.
        by_round = {x["round"]: x["samples_per_s"] for x in t}
        pairs = [x["samples_per_s"] / by_round[x["round"]] for x in o if x["round"] in by_round]
        ratio = statistics.median(pairs) if pairs else float("nan")
        print(f"| {model} | {batch} | {os_:.1f} | {ts_:.1f} | {ratio:.2f} | {med(o, 'median_ms'):.2f} "
              f"| {med(t, 'median_ms'):.2f} | {orss:.0f} | {trss:.0f} | {orss / trss:.2f} | {par} |")
    _, _, node_rss, _ = run(["node", "-e", "require('onnxruntime-node')"], env, 60)
    print(f"\nORT's peak RSS includes node.js: node with onnxruntime-node loaded and no model "
          f"peaks at {node_rss / 1024:.0f} MiB here.")
    sys.stdout.flush()
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
