# Synthetic "spectrum line scan": PIXELS positions, CHANNELS energy channels each. The spectrum at
# pixel x is a Gaussian peak whose centre drifts with x (a plasmon shifting along a particle),
# plus noise. Deterministic for a given SEED. Output CSV: pixel,channel,intensity.
BEGIN {
  srand(seed);
  print "pixel,channel,intensity";
  for (x = 0; x < pixels; x++) {
    centre = 10 + 25 * x / (pixels - 1) + 2 * sin(x / 5);
    for (c = 0; c < channels; c++) {
      d = (c - centre) / 3.0;
      printf "%d,%d,%.6f\n", x, c, 100 * exp(-d * d / 2) + 5 * rand();
    }
  }
}
