#!/usr/bin/env python3
"""An independent writer (and checker) of the trajectory formats that
`cmf run trajectory-import` reads, for the md tests.

  formats.py write TRAJ.h5 DIR   writes DIR/XDATCAR, DIR/OSZICAR, DIR/dump.lammpstrj,
                                 DIR/log.lammps and DIR/traj.xyz from a trajectory file
  formats.py check ORIG.h5 IMPORTED.h5 FORMAT
                                 compares an imported trajectory with the original (VASP
                                 groups atoms by species: the original is reordered the same
                                 way) and prints the largest differences; exits 1 when one
                                 is above the formats' precision

Written from the formats' descriptions (VASP's XDATCAR and OSZICAR, LAMMPS's
`dump custom` and log, ASE's extended XYZ), not from cmf's reader.
"""
import sys

import h5py
import numpy as np


def load(path):
    with h5py.File(path, "r") as f:
        return {
            "positions": f["positions"][()].astype(np.float64),
            "species": [s.decode() if isinstance(s, bytes) else s for s in f["species"][()]],
            "cell": f["cell"][()],
            "energy": f["energy"][()] if "energy" in f else None,
            "forces": f["forces"][()].astype(np.float64) if "forces" in f else None,
            "step": f["step"][()],
        }


def species_order(species):
    """Element names in order of first appearance, and the stable grouping permutation."""
    names = list(dict.fromkeys(species))
    order = sorted(range(len(species)), key=lambda i: names.index(species[i]))
    return names, order


def write_vasp(t, out):
    names, order = species_order(t["species"])
    cell = t["cell"]
    inv = np.linalg.inv(cell)
    steps = [int(s) + 1 for s in t["step"]]  # VASP counts ionic steps from 1
    with open(f"{out}/XDATCAR", "w") as f:
        f.write("MoS2 written by tests/md/formats.py\n")
        f.write("           1\n")
        for row in cell:
            f.write("    %12.6f%12.6f%12.6f\n" % tuple(row))
        f.write("".join("%5s" % n for n in names) + "\n")
        f.write("".join("%6d" % t["species"].count(n) for n in names) + "\n")
        for k, step in enumerate(steps):
            f.write("Direct configuration=%6d\n" % step)
            frac = t["positions"][k][order] @ inv
            for p in frac:
                f.write("  %.10f  %.10f  %.10f\n" % tuple(p))
    # OSZICAR has every ionic step; those between the frames get other energies, so
    # that an off-by-one alignment would show.
    energy_of = dict(zip(steps, t["energy"]))
    with open(f"{out}/OSZICAR", "w") as f:
        for step in range(1, steps[-1] + 1):
            f.write("       N       E                     dE             d eps       ncg     rms\n")
            f.write("DAV:   1    -0.540000000000E+03   -0.54000E+03   -0.10000E+02  1000   0.100E+02\n")
            free = energy_of.get(step, -1000.0 - step)
            kinetic = 3.5
            f.write("%6d T=   300. E= %.11E F= %.11E E0= %.11E  EK= %.5E SP= 0.00E+00 SK= 0.00E+00\n"
                    % (step, free + kinetic, free, free, kinetic))


def write_lammps(t, out):
    names, _ = species_order(t["species"])
    types = [names.index(s) + 1 for s in t["species"]]
    cell = t["cell"]
    inv = np.linalg.inv(cell)
    lx, xy, xz = cell[0][0], cell[1][0], cell[2][0]
    ly, yz, lz = cell[1][1], cell[2][1], cell[2][2]
    origin = np.array([-1.5, 2.0, -3.0])  # a box that does not start at 0
    lo = origin
    hi = origin + np.array([lx, ly, lz])
    bx = (lo[0] + min(0, xy, xz, xy + xz), hi[0] + max(0, xy, xz, xy + xz))
    by = (lo[1] + min(0, yz), hi[1] + max(0, yz))
    rng = np.random.default_rng(3)
    with open(f"{out}/dump.lammpstrj", "w") as f:
        for k, step in enumerate(t["step"]):
            f.write("ITEM: TIMESTEP\n%d\nITEM: NUMBER OF ATOMS\n%d\n" % (step, len(types)))
            f.write("ITEM: BOX BOUNDS xy xz yz pp pp pp\n")
            f.write("%.16e %.16e %.16e\n" % (bx[0], bx[1], xy))
            f.write("%.16e %.16e %.16e\n" % (by[0], by[1], xz))
            f.write("%.16e %.16e %.16e\n" % (lo[2], hi[2], yz))
            scaled = k % 2 == 1  # odd frames scaled, to read both kinds
            f.write("ITEM: ATOMS id type %s fx fy fz\n" % ("xs ys zs" if scaled else "x y z"))
            for i in rng.permutation(len(types)):  # in no particular order, as with MPI
                p = t["positions"][k][i]
                p = p @ inv if scaled else p + origin
                fo = t["forces"][k][i]
                f.write("%d %d %.10g %.10g %.10g %.10g %.10g %.10g\n"
                        % (i + 1, types[i], p[0], p[1], p[2], fo[0], fo[1], fo[2]))
    every = int(t["step"][1] - t["step"][0]) if len(t["step"]) > 1 else 1
    with open(f"{out}/log.lammps", "w") as f:
        f.write("LAMMPS (29 Sep 2021 - Update 2)\nunits metal\natom_style atomic\n")
        f.write("kim interactions %s\n" % " ".join(names))
        f.write("timestep 0.001\nthermo %d\n" % max(1, every // 2))
        f.write("Step Temp PotEng TotEng \n")
        energy_of = dict(zip((int(s) for s in t["step"]), t["energy"]))
        last = int(t["step"][-1])
        for step in range(0, last + 1, max(1, every // 2)):
            e = energy_of.get(step, -1000.0 - step)
            f.write("%8d %12.6f %.12f %.12f \n" % (step, 300.0, e, e + 3.5))
            if step == every:
                f.write("WARNING: Communication cutoff is shorter than a bond length (src/comm.cpp:723)\n")
        f.write("Loop time of 1.0 on 1 procs for %d steps with %d atoms\n" % (last, len(types)))


def write_extxyz(t, out):
    lattice = " ".join("%.10f" % v for v in t["cell"].reshape(-1))
    with open(f"{out}/traj.xyz", "w") as f:
        for k in range(len(t["step"])):
            f.write("%d\n" % len(t["species"]))
            f.write('Lattice="%s" Properties=species:S:1:pos:R:3:forces:R:3 energy=%.10f pbc="T T F"\n'
                    % (lattice, t["energy"][k]))
            for s, p, fo in zip(t["species"], t["positions"][k], t["forces"][k]):
                f.write("%-2s %15.8f %15.8f %15.8f %15.8f %15.8f %15.8f\n" % (s, *p, *fo))


def check(orig_path, imported_path, fmt):
    a, b = load(orig_path), load(imported_path)
    order = species_order(a["species"])[1] if fmt == "vasp" else list(range(len(a["species"])))
    species = [a["species"][i] for i in order]
    assert species == b["species"], "species differ"
    assert a["positions"].shape == b["positions"].shape, "shapes differ"
    # Positions may be wrapped differently by one cell vector in no case here: compare as is.
    dpos = np.abs(a["positions"][:, order] - b["positions"]).max()
    de = np.abs(a["energy"] - b["energy"]).max()
    dcell = np.abs(a["cell"] - b["cell"]).max()
    limits = {"positions": 2e-5, "energy": 1e-8, "cell": 1e-5}
    found = {"positions": dpos, "energy": de, "cell": dcell}
    if fmt != "vasp":
        found["forces"] = np.abs(a["forces"] - b["forces"]).max()
        limits["forces"] = 1e-5
    print(" ".join("%s=%.3g" % kv for kv in found.items()))
    return 0 if all(found[k] <= limits[k] for k in found) else 1


def main():
    if len(sys.argv) == 4 and sys.argv[1] == "write":
        t = load(sys.argv[2])
        write_vasp(t, sys.argv[3])
        write_lammps(t, sys.argv[3])
        write_extxyz(t, sys.argv[3])
        return 0
    if len(sys.argv) == 5 and sys.argv[1] == "check":
        return check(sys.argv[2], sys.argv[3], sys.argv[4])
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
