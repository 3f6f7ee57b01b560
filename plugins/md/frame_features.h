// Features of trajectory frames for learning, derived from the frames, never
// stored with them: a rotation- and permutation-invariant descriptor of the
// bonds, and an annular-dark-field-like image. Torch-free; thread-safe.
#pragma once

#include <string>
#include <vector>

#include "trajectory.h"

namespace cmf::md {

struct BondOptions {
  double r_min = 2.0, r_max = 3.6;  // the distance histograms' range (Å)
  int r_bins = 32;
  double cutoff = 2.9;    // a bond: two atoms closer than this (Å), for angles
  int angle_bins = 32;    // over 40 to 180 degrees
  double r_sigma = 0.03;  // Gaussian smearing of a distance (Å)
  double angle_sigma = 1.5;  // and of an angle (degrees)
};

// The bond descriptor of frame T: for each unordered pair of species (in the
// order of first appearance: Mo-Mo, Mo-S, S-S), a smeared histogram of the
// distances between such atoms (periodic images included), and for each
// species as the centre, a smeared histogram of the angles between its bonds
// to atoms of the other species (S-Mo-S, Mo-S-Mo); each histogram divided by
// the number of atoms. Distances and angles do not change when the frame is
// rotated, translated or its atoms renumbered, so neither do the features.
std::vector<float> BondFeatures(const Trajectory& t, int frame,
                                const BondOptions& o);
// Its length for a trajectory of S species.
int BondFeatureCount(int species_count, const BondOptions& o);

struct RenderOptions {
  double pixel = 0.12;      // Å per pixel: the real MoS2 ADF frame's scale
  int size = 208;           // pixels per side (the published crops: 208 x 208)
  double probe_fwhm = 0.8;  // the probe's full width at half maximum (Å)
  double z_exponent = 1.7;  // intensity ~ Z^exponent (Z-contrast)
};

// An ADF-like image of frame T seen along the cell's third vector: every
// atom (periodic images included) adds Z^z_exponent times a Gaussian probe
// centred at its projected (x, y); the square window of SIZE pixels is
// centred on the cell's centre. Row-major, SIZE x SIZE; row r is y = centre_y
// + (r - SIZE/2 + 0.5) * pixel, column c likewise in x.
std::vector<float> RenderAdf(const Trajectory& t, int frame,
                             const RenderOptions& o);

// Average pooling of a SIZE x SIZE image to OUT x OUT (SIZE a multiple of OUT).
std::vector<float> Pool(const std::vector<float>& image, int size, int out);

}  // namespace cmf::md
