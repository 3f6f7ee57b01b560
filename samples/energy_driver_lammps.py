#!/usr/bin/env python3
"""An energy driver for `cmf run aimd-al --energy proc:...` (doc/aimd.md, "The energy driver").

It answers each request with the single-point potential energy of the frame, computed by LAMMPS
(Debian's python3-lammps) with the OpenKIM Stillinger-Weber model of MoS2 that md-mos2 uses: the
same level of theory as the trajectories, standing in for the DFT code a real site would call.

  cmf run aimd-al --trajectories a.h5 b.h5 --energy "proc:python3 samples/energy_driver_lammps.py"

Protocol: one JSON object per line on standard input and output; messages for the user go to
standard error. Exits at {"bye": ...} or at the end of its input.
"""
import json
import math
import sys

MODEL = "SW_MX2_WenShirodkarPlechac_2017_MoS__MO_201919462778_001"
MASSES = {"Mo": 95.95, "S": 32.06}


def lammps_box(cell):
    """The cell as LAMMPS wants it (a1 along x, a2 in the xy plane): lengths, tilts, rotation."""
    a, b, c = (list(map(float, v)) for v in cell)
    norm = lambda v: math.sqrt(sum(x * x for x in v))
    dot = lambda u, v: sum(x * y for x, y in zip(u, v))
    ax = norm(a)
    ex = [x / ax for x in a]
    bx = dot(b, ex)
    bp = [b[i] - bx * ex[i] for i in range(3)]
    by = norm(bp)
    ey = [x / by for x in bp]
    ez = [ex[1] * ey[2] - ex[2] * ey[1], ex[2] * ey[0] - ex[0] * ey[2], ex[0] * ey[1] - ex[1] * ey[0]]
    rotate = lambda v: (dot(v, ex), dot(v, ey), dot(v, ez))
    cx, cy, cz = rotate(c)
    return (ax, by, cz, bx, cx, cy), rotate


def energy(lmp_class, frame):
    species, positions, cell = frame["species"], frame["positions"], frame["cell"]
    kinds = [s for s in dict.fromkeys(species)]
    unknown = [s for s in kinds if s not in MASSES]
    if unknown:
        raise ValueError("this driver's potential knows Mo and S, not " + ", ".join(unknown))
    (lx, ly, lz, xy, xz, yz), rotate = lammps_box(cell)
    lmp = lmp_class(cmdargs=["-screen", "none", "-log", "none", "-nocite"])
    try:
        lmp.command(f"kim init {MODEL} metal")
        lmp.commands_string(f"""
boundary p p p
atom_style atomic
region cell prism 0 {lx!r} 0 {ly!r} 0 {lz!r} {xy!r} {xz!r} {yz!r} units box
create_box {len(kinds)} cell
""")
        for k, s in enumerate(kinds):
            lmp.command(f"mass {k + 1} {MASSES[s]}")
        for s, p in zip(species, positions):
            x, y, z = rotate(p)
            lmp.command(f"create_atoms {kinds.index(s) + 1} single {x!r} {y!r} {z!r} units box remap yes")
        lmp.command("kim interactions " + " ".join(kinds))
        lmp.command("run 0")
        return lmp.get_thermo("pe")
    finally:
        lmp.close()


def main():
    try:
        from lammps import lammps
    except ImportError:
        print("energy_driver_lammps.py: python3-lammps is not installed (apt-get install "
              "python3-lammps)", file=sys.stderr)
        return 1
    for line in sys.stdin:
        if not line.strip():
            continue
        request = json.loads(line)
        if "hello" in request:
            answer = {"ready": {"driver": "energy_driver_lammps.py", "model": MODEL}}
        elif "energy" in request:
            try:
                answer = {"energy": energy(lammps, request["energy"])}
            except Exception as e:  # the run ends with the message; every step so far is kept
                answer = {"error": f"{type(e).__name__}: {e}"}
        elif "bye" in request:
            return 0
        else:
            answer = {"error": "unknown request"}
        print(json.dumps(answer, allow_nan=False), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
