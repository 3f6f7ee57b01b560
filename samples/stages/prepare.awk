# Reduces each spectrum to the scalar the experiment steers by: the channel of its peak
# (intensity-weighted centroid of the channels above half maximum), with positions min-max
# normalised to [0, 1]. Output CSV: x,peak.
BEGIN { FS = "," }
NR > 1 { v[$1, $2] = $3; if ($1 + 1 > n) n = $1 + 1; if ($2 + 1 > m) m = $2 + 1 }
END {
  print "x,peak";
  for (x = 0; x < n; x++) {
    top = 0;
    for (c = 0; c < m; c++) if (v[x, c] > top) top = v[x, c];
    s = 0; w = 0;
    for (c = 0; c < m; c++) if (v[x, c] >= top / 2) { s += c * v[x, c]; w += v[x, c] }
    printf "%.6f,%.6f\n", x / (n - 1), s / w;
  }
}
