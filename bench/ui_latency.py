#!/usr/bin/env python3
"""How long `cmf ui` takes to answer: from starting the process to the first page served, and to a
laid-out lineage graph of about 1,000 nodes (a chain of 500 executions, each taking the previous
one's output). Prints each figure (the median of --runs starts), and beside the lineage page the
same graph drawn by `cmf lineage --format svg` in a process of its own (the peer: the same code
from the command line; the page also loads Graphviz, the first time a server draws, and sends the
drawing over HTTP). The page draws such a chain as one node (a run of one stage) until it is
expanded: both are timed. Then `cmf ui --export` of every page of the repository, once.

usage: bench/ui_latency.py --cmf build-release/cmf_cli/cmf [--chain 500] [--runs 5]
"""
import argparse
import os
import re
import socket
import subprocess
import sys
import tempfile
import time


def get(port, path):
    """The status and body of GET PATH on 127.0.0.1:PORT."""
    with socket.create_connection(("127.0.0.1", port)) as s:
        s.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
                  "Connection: close\r\n\r\n".encode())
        data = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split()[1]), body


def start(cmf, ws):
    """`cmf ui --port 0` in WS: the process, its port and the seconds to its first line."""
    t0 = time.perf_counter()
    p = subprocess.Popen([cmf, "ui", "--port", "0"], cwd=ws, stdout=subprocess.PIPE, text=True)
    line = p.stdout.readline()
    m = re.search(r"http://127\.0\.0\.1:(\d+)/", line)
    if not m:
        p.kill()
        sys.exit(f"ui_latency: cmf ui printed {line!r}")
    return p, int(m.group(1)), t0


def median(xs):
    xs = sorted(xs)
    return xs[len(xs) // 2]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--cmf", required=True)
    ap.add_argument("--chain", type=int, default=500)
    ap.add_argument("--runs", type=int, default=5)
    a = ap.parse_args()
    cmf = os.path.abspath(a.cmf)
    with tempfile.TemporaryDirectory() as ws:
        run = lambda *args: subprocess.run([cmf, *args], cwd=ws, check=True,
                                           stdout=subprocess.DEVNULL)
        run("init", "-q")
        with open(os.path.join(ws, "d0"), "w") as f:
            f.write("0\n")
        t = time.perf_counter()
        for i in range(a.chain):
            run("exec", "-q", "--stage", "step", "--in", f"d{i}", "--out", f"d{i + 1}", "--",
                "sh", "-c", f"echo {i + 1} > d{i + 1}")
        print(f"cmf ui latency: a chain of {a.chain} executions logged in "
              f"{time.perf_counter() - t:.1f} s")
        leaf = f"d{a.chain}"
        hash_ = subprocess.run([cmf, "lineage", leaf, "--json", "--depth", "0"], cwd=ws,
                               check=True, capture_output=True, text=True).stdout
        hash_ = re.search(r'"root"\s*:\s*"([0-9a-f]+)"', hash_).group(1)
        first, folded, graph, nodes, folded_nodes = [], [], [], 0, 0
        for _ in range(a.runs):
            p, port, t0 = start(cmf, ws)
            status, _ = get(port, "/")
            first.append(time.perf_counter() - t0)
            t1 = time.perf_counter()
            status2, body = get(port, f"/lineage/{hash_}?depth={2 * a.chain + 2}")
            folded.append(time.perf_counter() - t1)
            folded_nodes = body.count(b'class="node"')
            expand = re.search(rb'xlink:href="([^"]*expand=[^"]+)"', body)
            if not expand:
                sys.exit("ui_latency: the chain was not drawn as one node")
            t2 = time.perf_counter()
            status3, body = get(port, expand.group(1).decode().replace("&amp;", "&"))
            graph.append(time.perf_counter() - t2)
            nodes = body.count(b'class="node"')
            p.terminate()
            p.wait()
            if status != 200 or status2 != 200 or status3 != 200:
                sys.exit(f"ui_latency: pages answered {status}, {status2}, {status3}")
        cli = []
        for _ in range(a.runs):
            t = time.perf_counter()
            subprocess.run([cmf, "lineage", leaf, "--format", "svg"], cwd=ws, check=True,
                           stdout=subprocess.DEVNULL)
            cli.append(time.perf_counter() - t)
        t = time.perf_counter()
        exported = subprocess.run([cmf, "ui", "--export", "site"], cwd=ws, check=True,
                                  capture_output=True, text=True).stdout.strip()
        export_s = time.perf_counter() - t
    print(f"  {'start to the first page (/)':44s} {1000 * median(first):7.1f} ms"
          "  (target: well under 1 s)")
    print(f"  {f'the lineage page, the chain as one node ({folded_nodes})':44s} "
          f"{1000 * median(folded):7.1f} ms")
    print(f"  {f'the lineage page expanded, {nodes} nodes laid out':44s} "
          f"{1000 * median(graph):7.1f} ms")
    print(f"  {'peer: cmf lineage --format svg, a process':44s} {1000 * median(cli):7.1f} ms")
    print(f"  {'cmf ui --export, every page':44s} {export_s:7.1f} s   ({exported})")


if __name__ == "__main__":
    main()
