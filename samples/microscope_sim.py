#!/usr/bin/python3
"""A simulated microscope controller for `cmf run dkl-al --instrument proc:CMD`.

It plays the microscope from a recorded experiment file: asked to measure at a
pixel, it answers the spectrum recorded there (plus optional noise). It speaks
the protocol of doc/instrument-protocol.md and is meant as the model for a real
controller: replace `Microscope.measure` with the code that moves the beam and
reads the spectrometer, and keep the rest.

    cmf run dkl-al --data sample.h5 --steps 50 \\
        --instrument "proc:exec samples/microscope_sim.py sample.h5"

(cmf runs the command with /bin/sh -c; `exec` makes the controller itself, not
the shell, the process that cmf stops at the end.)

Usage: microscope_sim.py EXPERIMENT.h5 [--delay SECONDS] [--noise SIGMA]
                         [--seed N] [--log FILE]

The rules a controller has to keep, all of which this one does:

  * Standard output carries the protocol and nothing else: one JSON object per
    line, flushed at once. Anything for people goes to standard error (cmf
    passes it through to its own) or to a log file.
  * Answer every request with exactly one line, in order.
  * Exit 0 on {"bye": {}} or at the end of standard input, and let SIGTERM end
    the process: cmf sends SIGTERM if the controller is still running about
    2 s after the bye.
  * Ignore Ctrl-C (SIGINT). The terminal sends it to cmf and the controller
    alike; cmf then finishes the measurement in progress, trains and writes
    the final model and maps, and says bye. A controller killed by the SIGINT
    would end the run at once, with only the measured points kept.

Needs numpy and h5py (Debian: python3-numpy, python3-h5py).
"""

import argparse
import json
import math
import os
import signal
import sys
import time

import h5py
import numpy as np

PROTOCOL = 1
NAME = "microscope_sim"


def note(message):
    """A message for the person at the terminal: on standard error, never on
    standard output (cmf would read it as an answer)."""
    print(f"{NAME}: {message}", file=sys.stderr, flush=True)


class Microscope:
    """The simulated hardware: the recorded spectrum image of an experiment
    file (/spectra float32 [H, W, E]), read one spectrum at a time."""

    def __init__(self, path, delay, noise, seed):
        try:
            self.file = h5py.File(path, "r")
        except OSError as e:
            raise SystemExit(f"{NAME}: cannot open '{path}': {e}")
        if "spectra" not in self.file:
            raise SystemExit(f"{NAME}: '{path}' has no /spectra to play back")
        self.spectra = self.file["spectra"]
        if self.spectra.ndim != 3:
            raise SystemExit(f"{NAME}: /spectra of '{path}' is not [H, W, E]")
        self.height, self.width, self.channels = self.spectra.shape
        self.delay = delay
        self.noise = noise
        self.rng = np.random.default_rng(seed)

    def measure(self, x, y):
        """The spectrum at column X, row Y: a list of E finite floats.
        A real controller moves the beam to (x, y), acquires, and reads the
        spectrometer here."""
        if self.delay > 0:
            time.sleep(self.delay)  # the acquisition time
        spectrum = self.spectra[y, x, :].astype(np.float64)
        if self.noise > 0:
            spectrum += self.rng.normal(0.0, self.noise, size=spectrum.shape)
        return spectrum.tolist()

    def close(self):
        self.file.close()


class Log:
    """Optional transcript of every line exchanged (--log FILE)."""

    def __init__(self, path):
        self.out = open(path, "a", encoding="utf-8") if path else None

    def write(self, direction, line):
        if self.out:
            stamp = time.strftime("%Y-%m-%dT%H:%M:%S")
            # Long spectra are cut so that the log stays readable.
            text = line if len(line) <= 200 else line[:197] + "..."
            self.out.write(f"{stamp} {direction} {text}\n")
            self.out.flush()


def send(message, log):
    """Writes MESSAGE as one line of JSON and flushes it at once: cmf waits
    for the newline. allow_nan=False guarantees strict JSON (Python would
    otherwise write NaN or Infinity, which are not JSON)."""
    line = json.dumps(message, allow_nan=False, separators=(",", ":"))
    sys.stdout.write(line + "\n")
    sys.stdout.flush()
    log.write(">", line)


def check_greeting(hello, microscope):
    """The greeting says what cmf will ask: stop at once (exit 1) if it does
    not fit this microscope, so that no run starts on the wrong data."""
    if not isinstance(hello, dict):
        note(f"the greeting is not an object: {hello!r}")
        sys.exit(1)
    if hello.get("protocol") != PROTOCOL:
        note(f"cmf speaks protocol {hello.get('protocol')}, this controller {PROTOCOL}")
        sys.exit(1)
    expected = (microscope.width, microscope.height, microscope.channels)
    asked = (hello.get("width"), hello.get("height"), hello.get("channels"))
    if asked != expected:
        note("cmf expects a %sx%s scan with %s channels; the recording has %sx%s "
             "with %s channels" % (asked[0], asked[1], asked[2],
                                   expected[0], expected[1], expected[2]))
        sys.exit(1)


def answer_measure(request, microscope):
    """The answer to {"measure": {"x": X, "y": Y}}: a spectrum, or an error
    that cmf reports (and with which it ends the run)."""
    x, y = request.get("x"), request.get("y")
    if type(x) is not int or type(y) is not int:
        return {"error": f"x and y must be integers, got {x!r} and {y!r}"}
    if not (0 <= x < microscope.width and 0 <= y < microscope.height):
        return {"error": f"pixel ({x}, {y}) lies outside the "
                         f"{microscope.width}x{microscope.height} scan area"}
    spectrum = microscope.measure(x, y)
    if len(spectrum) != microscope.channels or not all(map(math.isfinite, spectrum)):
        return {"error": f"the detector gave no valid spectrum at ({x}, {y})"}
    return {"spectrum": spectrum}


def main():
    parser = argparse.ArgumentParser(
        description="Simulated microscope controller for cmf dkl-al "
                    "(doc/instrument-protocol.md).")
    parser.add_argument("experiment", help="HDF5 file with /spectra [H, W, E]")
    parser.add_argument("--delay", type=float, default=0.0, metavar="SECONDS",
                        help="acquisition time per spectrum (default 0)")
    parser.add_argument("--noise", type=float, default=0.0, metavar="SIGMA",
                        help="standard deviation of Gaussian noise added to "
                             "every channel, in the units of /spectra (default 0)")
    parser.add_argument("--seed", type=int, default=0, metavar="N",
                        help="seed of the noise (default 0)")
    parser.add_argument("--log", metavar="FILE",
                        help="append a transcript of the session to FILE")
    args = parser.parse_args()
    if args.delay < 0 or args.noise < 0:
        parser.error("--delay and --noise must not be negative")

    # Ctrl-C reaches the controller too; leave the ending to cmf (see above).
    signal.signal(signal.SIGINT, signal.SIG_IGN)

    microscope = Microscope(args.experiment, args.delay, args.noise, args.seed)
    log = Log(args.log)
    greeted = False
    try:
        while True:
            line = sys.stdin.readline()
            if not line:  # end of input: cmf has gone
                break
            line = line.strip()
            if not line:  # blank lines carry nothing
                continue
            log.write("<", line)
            try:
                message = json.loads(line)
            except json.JSONDecodeError:
                message = None
            if not isinstance(message, dict):
                send({"error": "expected one JSON object per line"}, log)
                continue
            # The request is named by its key; other keys are ignored, so that
            # a later cmf may add some.
            if "hello" in message:
                check_greeting(message["hello"], microscope)
                greeted = True
                send({"ready": {"controller": NAME, "protocol": PROTOCOL}}, log)
            elif "measure" in message:
                if not greeted:
                    send({"error": "measure before hello"}, log)
                elif not isinstance(message["measure"], dict):
                    send({"error": "measure needs {\"x\": X, \"y\": Y}"}, log)
                else:
                    send(answer_measure(message["measure"], microscope), log)
            elif "bye" in message:
                break
            else:
                send({"error": f"unknown request {sorted(message)}"}, log)
    except BrokenPipeError:
        # cmf closed its end while we were answering: nothing is left to do.
        # Point stdout at /dev/null so that Python's exit flush stays quiet.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    finally:
        microscope.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
