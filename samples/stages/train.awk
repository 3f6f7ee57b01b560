# Fits peak = a + b*x + c*x^2 by gradient descent on the mean squared error, logging the loss of
# every epoch to cmf through the descriptor in CMF_METRICS_FD ("loss EPOCH VALUE" lines).
# Writes the fitted coefficients to MODEL.
BEGIN { FS = ","; metrics = "/dev/fd/" ENVIRON["CMF_METRICS_FD"] }
NR > 1 { x[n] = $1; y[n] = $2; n++ }
END {
  a = 0; b = 0; c = 0;
  for (epoch = 0; epoch < epochs; epoch++) {
    ga = 0; gb = 0; gc = 0; loss = 0;
    for (i = 0; i < n; i++) {
      e = a + b * x[i] + c * x[i] * x[i] - y[i];
      loss += e * e; ga += e; gb += e * x[i]; gc += e * x[i] * x[i];
    }
    loss /= n;
    a -= lr * 2 * ga / n; b -= lr * 2 * gb / n; c -= lr * 2 * gc / n;
    if (ENVIRON["CMF_METRICS_FD"] != "") printf "loss %d %.6f\n", epoch, loss > metrics;
  }
  printf "a=%.6f\nb=%.6f\nc=%.6f\n", a, b, c > model;
  printf "trained %d epochs, final loss %.4f\n", epochs, loss;
}
